package server

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	tu "github.com/weir-broker/weir/internal/testutil"
)

// kcat runs kcat (librdkafka) against the node's Kafka port with a deadline.
func kcat(t *testing.T, s *Server, stdin string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "kcat", append([]string{"-b", s.KafkaAddr()}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("kcat %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// librdkafka (the C client, through kcat): metadata, produce with keys and
// headers under every codec, consume back.
func TestKafkaKcat(t *testing.T) {
	if _, err := exec.LookPath("kcat"); err != nil {
		t.Skip("kcat is not installed (apt-get install -y kcat; .ci/run installs it): skipping the librdkafka test")
	}
	s := startKafkaNode(t)
	createTopic(t, s.URL(), "kc", 1)
	if md := kcat(t, s, "", "-L", "-t", "kc"); !strings.Contains(md, `topic "kc" with 1 partitions`) {
		t.Fatalf("metadata:\n%s", md)
	}
	codecs := []string{"none", "gzip", "snappy", "lz4", "zstd"}
	for i, codec := range codecs {
		kcat(t, s, fmt.Sprintf("k%d:v%d\n", i, i), "-P", "-t", "kc", "-p", "0", "-K", ":", "-H", "codec="+codec, "-X", "compression.codec="+codec)
	}
	out := kcat(t, s, "", "-C", "-t", "kc", "-p", "0", "-o", "beginning", "-c", fmt.Sprint(len(codecs)), "-e", "-f", "%k=%s|%h\\n")
	for i, codec := range codecs {
		if want := fmt.Sprintf("k%d=v%d|codec=%s", i, i, codec); !strings.Contains(out, want) {
			t.Fatalf("kcat consume: no %q in\n%s", want, out)
		}
	}
	var f fetchResp
	tu.Do(t, "GET", s.URL()+"/v1/topics/kc/partitions/0/records?offset=earliest", nil).JSON(t, &f)
	if len(f.Records) != len(codecs) || f.Records[4].Headers["codec"] != "zstd" || *f.Records[4].Key != "k4" {
		t.Fatalf("HTTP view of kcat's records: %+v", f.Records)
	}
}
