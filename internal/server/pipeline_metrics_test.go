package server

import (
	"bytes"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	tu "github.com/weir-broker/weir/internal/testutil"
)

// gaugeOf scrapes GET /metrics and returns the gauge name with exactly
// these labels' values, and whether it was there.
func gaugeOf(t *testing.T, u, name string, labels map[string]string) (float64, bool) {
	t.Helper()
	r := tu.Do(t, "GET", u+"/metrics", nil)
	if r.Status != 200 {
		t.Fatalf("/metrics: %d", r.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(bytes.NewReader(r.Body))
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	f := fams[name]
	if f == nil {
		return 0, false
	}
	for _, m := range f.Metric {
		if hasLabels(m, labels) && m.Gauge != nil {
			return m.Gauge.GetValue(), true
		}
	}
	return 0, false
}

func hasLabels(m *dto.Metric, labels map[string]string) bool {
	for k, v := range labels {
		found := false
		for _, lp := range m.Label {
			if lp.GetName() == k && lp.GetValue() == v {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// TestPipelineLagMetric: /metrics has weir_pipeline_lag per pipeline and
// input partition, equal to the status's lag: 0 when caught up, and the
// records produced while the pipeline is paused.
func TestPipelineLagMetric(t *testing.T) {
	s := startNode(t, t.TempDir())
	defer stop(t, s)
	u := s.URL()
	createTopic(t, u, "lin", 2)
	createTopic(t, u, "lout", 1)
	uploadModule(t, u, "pass", "examples/passthrough")
	createPipeline(t, u, map[string]any{"name": "lp", "module": "pass", "inputs": []string{"lin"}, "outputs": []string{"lout"}})
	at := func(part int) map[string]any { return map[string]any{"value": "v", "partition": part} }
	produce(t, u, "lin", at(0), at(0), at(0), at(1))
	waitCaughtUp(t, u, "lp")
	for _, part := range []string{"0", "1"} {
		if v, ok := gaugeOf(t, u, "weir_pipeline_lag", map[string]string{"pipeline": "lp", "topic": "lin", "partition": part}); !ok || v != 0 {
			t.Fatalf("caught up: weir_pipeline_lag partition %s = %v (present %v), want 0", part, v, ok)
		}
	}
	if r := tu.Do(t, "POST", u+"/v1/pipelines/lp/pause", nil); r.Status != 200 {
		t.Fatalf("pause: %d %s", r.Status, r.Body)
	}
	tu.Eventually(t, 30*time.Second, "the paused pipeline's workers to stop", func() bool {
		for _, p := range pipelineStatus(t, u, "lp").Partitions {
			if p.Running {
				return false
			}
		}
		return true
	})
	produce(t, u, "lin", at(0), at(0), at(1))
	// The fence: the status (same replica, same computation) shows the lag.
	tu.Eventually(t, 30*time.Second, "status lag 2 and 1", func() bool {
		st := pipelineStatus(t, u, "lp")
		return len(st.Partitions) == 2 && st.Partitions[0].Lag == 2 && st.Partitions[1].Lag == 1
	})
	for part, want := range map[string]float64{"0": 2, "1": 1} {
		if v, ok := gaugeOf(t, u, "weir_pipeline_lag", map[string]string{"pipeline": "lp", "topic": "lin", "partition": part}); !ok || v != want {
			t.Fatalf("paused: weir_pipeline_lag partition %s = %v (present %v), want %v", part, v, ok, want)
		}
	}
}
