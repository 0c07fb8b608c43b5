package server

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	tu "github.com/weir-broker/weir/internal/testutil"
)

// TestLivePageInChromium drives the live page (/demo, examples/live) and
// the weir.js client (/sdk/weir.js) in real headless Chromium: records
// already there and new ones appear in the table, the page's produce form
// writes to the topic, a node restart is survived by reconnecting and
// resuming after the last delivered offset (no gap, no duplicate), and a
// page of another origin gets no socket.
func TestLivePageInChromium(t *testing.T) {
	ctx, cancel := newBrowser(t, 120*time.Second)
	defer cancel()

	dir := t.TempDir()
	httpAddr := tu.FreeAddr(t)
	fixed := func(c *Config) { c.HTTPAddr = httpAddr }
	s := startNode(t, dir, fixed)
	defer func() { stop(t, s) }()
	u := s.URL()
	createTopic(t, u, "live", 3)
	for p := 0; p < 3; p++ {
		produceN(t, u, "live", 2, p, fmt.Sprint("before-", p, "-"))
	}

	// state reads what the page shows: table rows and the records it
	// counted (window.weirDemo, kept by the page for tests).
	type pageState struct {
		Rows       []string `json:"rows"`
		Seen       []string `json:"seen"`
		Duplicates int      `json:"duplicates"`
		Status     string   `json:"status"`
		Produced   string   `json:"produced"`
		Log        string   `json:"log"`
	}
	state := func() pageState {
		t.Helper()
		js, err := chromedp.Run(ctx, chromedp.Evaluate[string](`JSON.stringify({
			rows: [...document.querySelectorAll('#records tbody tr')].map(tr => tr.dataset.partition + '/' + tr.dataset.offset + '=' + tr.cells[4].textContent),
			seen: window.weirDemo ? [...window.weirDemo.seen.keys()] : [],
			duplicates: window.weirDemo ? window.weirDemo.duplicates : -1,
			status: document.getElementById('status').textContent,
			produced: document.getElementById('produced').textContent,
			log: document.getElementById('log').textContent,
		})`))
		if err != nil {
			t.Fatalf("reading the page: %v", err)
		}
		var st pageState
		if err := json.Unmarshal([]byte(js), &st); err != nil {
			t.Fatal(err)
		}
		return st
	}
	waitPage := func(what string, cond func(pageState) bool) pageState {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			st := state()
			if cond(st) {
				return st
			}
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s; the page shows %+v", what, st)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	hasRow := func(st pageState, value string) bool {
		for _, r := range st.Rows {
			if strings.HasSuffix(r, "="+value) {
				return true
			}
		}
		return false
	}

	if err := chromedp.Do(ctx, chromedp.Navigate(u+"/demo?topic=live&from=earliest")); err != nil {
		t.Fatal(err)
	}
	st := waitPage("the 6 records already in the topic", func(st pageState) bool { return len(st.Rows) == 6 })
	if st.Status != "connected" || !hasRow(st, "before-1-1") {
		t.Fatalf("page: %+v", st)
	}

	// New records stream in.
	produceN(t, u, "live", 1, 2, "streamed-")
	waitPage("a streamed record", func(st pageState) bool { return hasRow(st, "streamed-0") })

	// The produce form writes through the socket.
	if err := chromedp.Do(ctx,
		chromedp.SetValue(chromedp.CSS("#key"), "browser-key"),
		chromedp.SetValue(chromedp.CSS("#value"), "from-the-browser"),
		chromedp.Click(chromedp.CSS("#send")),
	); err != nil {
		t.Fatal(err)
	}
	st = waitPage("the page's own record", func(st pageState) bool {
		return strings.HasPrefix(st.Produced, "produced at partition") && hasRow(st, "from-the-browser")
	})
	var part, off int
	fmt.Sscanf(st.Produced, "produced at partition %d, offset %d", &part, &off)
	var f fetchResp
	tu.Do(t, "GET", fmt.Sprintf("%s/v1/topics/live/partitions/%d/records?offset=%d", u, part, off), nil).JSON(t, &f)
	if len(f.Records) == 0 || f.Records[0].Value != "from-the-browser" || f.Records[0].Key == nil || *f.Records[0].Key != "browser-key" {
		t.Fatalf("the page's record in the log: %+v", f.Records)
	}

	// Restart the node: the page reconnects with backoff and resumes after
	// the last record it got.
	stop(t, s)
	waitPage("the page to notice", func(st pageState) bool { return st.Status != "connected" })
	s = startNode(t, dir, fixed)
	waitPage("the page to reconnect", func(st pageState) bool { return st.Status == "connected" })
	for p := 0; p < 3; p++ {
		produceN(t, s.URL(), "live", 2, p, fmt.Sprint("after-", p, "-"))
	}
	st = waitPage("records after the restart", func(st pageState) bool { return len(st.Seen) == 14 })
	if st.Duplicates != 0 {
		t.Fatalf("%d duplicate records after the reconnect", st.Duplicates)
	}
	perPart := map[string]int{}
	for _, k := range st.Seen {
		p, _, _ := strings.Cut(k, "/")
		perPart[p]++
	}
	for _, k := range st.Seen {
		p, o, _ := strings.Cut(k, "/")
		var n int
		fmt.Sscan(o, &n)
		if n >= perPart[p] {
			t.Fatalf("gap: partition %s has %d records, saw offset %d (%v)", p, perPart[p], n, st.Seen)
		}
	}

	// A page of another origin cannot open a socket to the gateway.
	foreign := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprintf(w, `<!doctype html><title>pending</title><script>
			const ws = new WebSocket("ws://%s/v1/ws");
			ws.onopen = () => { document.title = "opened"; };
			ws.onclose = () => { if (document.title === "pending") document.title = "refused"; };
		</script>`, httpAddr)
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go foreign.Serve(ln)
	defer foreign.Close()
	if err := chromedp.Do(ctx, chromedp.Navigate("http://"+ln.Addr().String()+"/")); err != nil {
		t.Fatal(err)
	}
	var title string
	tu.Eventually(t, 20*time.Second, "the foreign page's socket to settle", func() bool {
		var err error
		if title, err = chromedp.Run(ctx, chromedp.Title()); err != nil {
			t.Fatal(err)
		}
		return title != "pending" && title != ""
	})
	if title != "refused" {
		t.Fatalf("a page of another origin got a socket: %q", title)
	}
}
