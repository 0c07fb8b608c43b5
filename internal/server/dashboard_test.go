package server

import (
	"bytes"
	"context"
	"fmt"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	tu "github.com/weir-broker/weir/internal/testutil"
)

// chromiumPath finds a Chromium binary. Without one the browser tests skip,
// unless CI is set: there a missing browser is a failure (.ci/run installs it).
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "/usr/bin/chromium"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("CI is set but no chromium binary was found (apt-get install chromium)")
	}
	t.Skip("no chromium binary; install chromium to run the browser tests")
	return ""
}

// newBrowser starts headless Chromium with a fresh profile.
func newBrowser(t *testing.T, timeout time.Duration) (context.Context, context.CancelFunc) {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1440, 1200),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	bctx, cancelBrowser := chromedp.NewContext(actx)
	tctx, cancelTimeout := context.WithTimeout(bctx, timeout)
	return tctx, func() { cancelTimeout(); cancelBrowser(); cancelAlloc() }
}

// TestDashboardInChromium loads the dashboard in real headless Chromium
// while records flow, and checks that it shows the topic, its partitions,
// the group's lag, live throughput samples, and records in the browser.
// With WEIR_SCREENSHOT=path it also saves a PNG there (docs/dashboard.png).
func TestDashboardInChromium(t *testing.T) {
	chromiumPath(t) // skip (or fail in CI) before the expensive setup
	s := startNode(t, t.TempDir(), func(c *Config) { c.Telemetry.DiskInterval = 300 * time.Millisecond })
	defer stop(t, s)
	u := s.URL()
	createTopic(t, u, "orders", 3)
	createTopic(t, u, "payments", 1)
	createTopic(t, u, "orders-copy", 1)
	uploadModule(t, u, "passthrough", "examples/passthrough")
	createPipeline(t, u, map[string]any{"name": "copy-orders", "module": "passthrough", "inputs": []string{"orders"}, "outputs": []string{"orders-copy"}})
	ctx, cancel := newBrowser(t, 90*time.Second)
	defer cancel()

	// Steady traffic until the test ends; a consumer group that lags.
	stopLoad := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		next0 := int64(0)
		for i := 0; ; i++ {
			select {
			case <-stopLoad:
				return
			case <-time.After(40 * time.Millisecond):
			}
			var recs []map[string]any
			for j := 0; j < 5+i%7; j++ {
				recs = append(recs, map[string]any{"key": fmt.Sprintf("customer-%d", (i+j)%17), "value": fmt.Sprintf(`{"order":%d,"amount":%d.%02d}`, i*10+j, 10+(i*7+j)%90, j*7%100)})
			}
			tu.TryDo("POST", u+"/v1/topics/orders/records", map[string]any{"records": recs})
			// A reader of partition 0 makes the "out" line move.
			if r, err := tu.TryDo("GET", fmt.Sprintf("%s/v1/topics/orders/partitions/0/records?offset=%d&max_records=100", u, next0), nil); err == nil && r.Status == 200 {
				var f fetchResp
				r.JSON(t, &f)
				next0 = f.NextOffset
			}
			if i%3 == 0 {
				tu.TryDo("POST", u+"/v1/topics/payments/records", map[string]any{"records": []map[string]any{{"key": "p", "value": fmt.Sprintf(`{"payment":%d}`, i)}}})
			}
			if i%10 == 0 {
				// The group follows partition 0 at half speed.
				r, err := tu.TryDo("GET", u+"/v1/topics/orders", nil)
				if err == nil && r.Status == 200 {
					var tp struct {
						Partitions []struct {
							HighWatermark int64 `json:"high_watermark"`
						} `json:"partitions"`
					}
					if r.JSON(t, &tp); len(tp.Partitions) == 3 {
						var offs []map[string]any
						for p, pi := range tp.Partitions {
							offs = append(offs, map[string]any{"topic": "orders", "partition": p, "offset": pi.HighWatermark / 2})
						}
						tu.TryDo("POST", u+"/v1/groups/billing/offsets", map[string]any{"offsets": offs})
					}
				}
			}
		}
	}()
	defer func() { close(stopLoad); wg.Wait() }()

	css := func(sel string) chromedp.CSS { return chromedp.CSS(sel) }
	text := func(sel string) string {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Text(css(sel)))
		if err != nil {
			t.Fatalf("text of %s: %v", sel, err)
		}
		return v
	}
	if err := chromedp.Do(ctx,
		chromedp.Navigate(u+"/?interval=400"),
		chromedp.WaitVisible(css(`#topics tbody tr[data-topic="orders"]`)),
		chromedp.WaitVisible(css(`#groups tbody tr[data-group="billing"]`)),
	); err != nil {
		t.Fatalf("dashboard did not show the topic and the group: %v", err)
	}
	// Live updates: the charts gather samples as polls come in.
	samples, want := 0, 12
	if os.Getenv("WEIR_SCREENSHOT") != "" {
		want = 40 // fuller charts for the documentation's picture
	}
	deadline := time.Now().Add(45 * time.Second)
	for samples < want && time.Now().Before(deadline) {
		if err := chromedp.Do(ctx, chromedp.Sleep(200*time.Millisecond)); err != nil {
			t.Fatal(err)
		}
		n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`state.samples.length`))
		if err != nil {
			t.Fatal(err)
		}
		samples = n
	}
	if samples < want {
		t.Fatalf("the dashboard gathered %d samples, want ≥ %d", samples, want)
	}
	topicsText, partitionsText, groupsText := text(`#topics tbody`), text(`#partitions tbody`), text(`#groups tbody`)
	lagCell := text(`#groups tbody tr[data-group="billing"] td.lag`)
	if !strings.Contains(topicsText, "orders") || !strings.Contains(topicsText, "payments") {
		t.Errorf("topics table: %q", topicsText)
	}
	if !strings.Contains(partitionsText, "orders") {
		t.Errorf("partitions table: %q", partitionsText)
	}
	if !strings.Contains(groupsText, "billing") || lagCell == "" || lagCell == "–" {
		t.Errorf("groups table %q, lag cell %q", groupsText, lagCell)
	}
	// The throughput chart has seen records flow, and the pipeline shows
	// the records it processed.
	waitJS := func(what, expr string) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](expr))
			if err != nil {
				t.Fatalf("%s: %v", what, err)
			}
			if ok {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			chromedp.Do(ctx, chromedp.Sleep(200*time.Millisecond))
		}
	}
	waitJS("a throughput sample above zero", `state.samples.some((s) => (s.inRate.orders || 0) > 0)`)
	waitJS("processed records of copy-orders",
		`parseFloat(((document.querySelector('#pipelines tbody tr[data-pipeline="copy-orders"] td.processed') || {}).textContent || "").replace(/,/g, "")) > 0`)

	// The record browser: click the topic, read partition records.
	if err := chromedp.Do(ctx,
		chromedp.SetValue(css(`#b-max`), "8"),
		chromedp.Click(css(`#topics tbody tr[data-topic="payments"]`)),
		chromedp.WaitVisible(css(`#records tbody tr td.num`)),
	); err != nil {
		t.Fatalf("record browser: %v", err)
	}
	if recordsText := text(`#records tbody`); !strings.Contains(recordsText, `"payment":0`) {
		t.Errorf("record browser shows %q, want the first payment", recordsText)
	}

	if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](`window.scrollTo(0, 0)`)); err != nil {
		t.Fatal(err)
	}
	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	img, err := png.Decode(bytes.NewReader(shot))
	if err != nil || img.Bounds().Dx() < 800 {
		t.Fatalf("screenshot is not a usable PNG: %v", err)
	}
	if p := os.Getenv("WEIR_SCREENSHOT"); p != "" {
		if !filepath.IsAbs(p) {
			t.Fatalf("WEIR_SCREENSHOT must be an absolute path, got %q", p)
		}
		if err := os.WriteFile(p, shot, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot saved to %s", p)
	}
}
