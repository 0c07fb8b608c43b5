package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/weir-broker/weir/objstore"
	"github.com/weir-broker/weir/raftlog"
)

// serveTiered holds the serve flags of tiered storage (docs/tiered-storage.md).
type serveTiered struct {
	endpoint, bucket, region, credsFile, prefix string
	interval                                    time.Duration
	cacheBytes                                  int64
}

func (t *serveTiered) flags(f *pflag.FlagSet) {
	f.StringVar(&t.endpoint, "tiered-storage-endpoint", "", "URL of the S3-compatible object store of tiered topics, addressed path-style (e.g. http://127.0.0.1:7070); empty: tiered storage off")
	f.StringVar(&t.bucket, "tiered-storage-bucket", "", "bucket of tiered storage (created when missing)")
	f.StringVar(&t.region, "tiered-storage-region", "us-east-1", "region of the tiered storage bucket")
	f.StringVar(&t.credsFile, "tiered-storage-credentials-file", "", "file with the object store's credentials (aws_access_key_id and aws_secret_access_key, AWS credentials file syntax); default: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
	f.StringVar(&t.prefix, "tiered-storage-prefix", "weir", "prefix of every object key; clusters sharing a bucket need distinct prefixes")
	f.DurationVar(&t.interval, "tiered-storage-interval", time.Second, "how often partition leaders upload closed segments and apply local retention")
	f.Int64Var(&t.cacheBytes, "tiered-storage-cache-bytes", 1<<30, "disk cache of segments read back from object storage, in bytes")
}

// config turns the flags into the server's settings: the S3 store (zero
// when off) and the raftlog tuning.
func (t *serveTiered) config() (objstore.S3Config, raftlog.TieredConfig, error) {
	tc := raftlog.TieredConfig{Prefix: t.prefix, Interval: t.interval, CacheBytes: t.cacheBytes}
	if t.endpoint == "" {
		if t.bucket != "" {
			return objstore.S3Config{}, tc, fmt.Errorf("--tiered-storage-bucket needs --tiered-storage-endpoint")
		}
		return objstore.S3Config{}, tc, nil
	}
	if t.bucket == "" {
		return objstore.S3Config{}, tc, fmt.Errorf("--tiered-storage-endpoint needs --tiered-storage-bucket")
	}
	sc := objstore.S3Config{Endpoint: t.endpoint, Bucket: t.bucket, Region: t.region,
		AccessKey: os.Getenv("AWS_ACCESS_KEY_ID"), SecretKey: os.Getenv("AWS_SECRET_ACCESS_KEY")}
	if t.credsFile != "" {
		b, err := os.ReadFile(t.credsFile)
		if err != nil {
			return sc, tc, fmt.Errorf("--tiered-storage-credentials-file: %w", err)
		}
		if sc.AccessKey, sc.SecretKey, err = parseCredentials(b); err != nil {
			return sc, tc, fmt.Errorf("--tiered-storage-credentials-file %s: %w", t.credsFile, err)
		}
	}
	return sc, tc, sc.Validate()
}

// parseCredentials reads an access key pair from an AWS credentials file
// (its [default] profile, or lines before any profile) or KEY=VALUE lines
// naming AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY.
func parseCredentials(b []byte) (access, secret string, err error) {
	section := ""
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		if line[0] == '[' {
			section = strings.Trim(line, "[] ")
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || (section != "" && section != "default") {
			continue
		}
		switch strings.ToLower(strings.TrimSpace(k)) {
		case "aws_access_key_id":
			access = strings.TrimSpace(v)
		case "aws_secret_access_key":
			secret = strings.TrimSpace(v)
		}
	}
	if access == "" || secret == "" {
		return "", "", fmt.Errorf("no aws_access_key_id and aws_secret_access_key found")
	}
	return access, secret, nil
}
