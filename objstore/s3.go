package objstore

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"github.com/weir-broker/weir/core"
)

// S3Config configures an S3 store. Endpoint, Bucket and the keys are
// required; the zero value of the rest is usable.
type S3Config struct {
	Endpoint  string // base URL of the S3 API, e.g. http://127.0.0.1:7070; addressed path-style
	Bucket    string // created when missing
	Region    string // default us-east-1
	AccessKey string
	SecretKey string
	// Timeout bounds one request when the caller's context has none;
	// default 30 s.
	Timeout time.Duration
}

// Validate reports a configuration NewS3 refuses.
func (c S3Config) Validate() error {
	switch {
	case c.Endpoint == "":
		return errors.New("objstore: S3 endpoint is empty")
	case c.Bucket == "":
		return errors.New("objstore: S3 bucket is empty")
	case c.AccessKey == "" || c.SecretKey == "":
		return errors.New("objstore: S3 credentials are missing (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or a credentials file)")
	case c.Timeout < 0:
		return errors.New("objstore: S3 timeout is negative")
	}
	return nil
}

// S3 is a core.ObjectStore on an S3-compatible bucket.
type S3 struct {
	cfg S3Config
	c   *s3.Client
}

var _ core.ObjectStore = (*S3)(nil)

// NewS3 connects to the bucket and creates it when missing; ctx bounds
// that check.
func NewS3(ctx context.Context, cfg S3Config) (*S3, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 30 * time.Second
	}
	c := s3.New(s3.Options{
		BaseEndpoint: aws.String(cfg.Endpoint),
		Region:       cfg.Region,
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(cfg.AccessKey, cfg.SecretKey, ""),
		HTTPClient:   &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 32, IdleConnTimeout: 90 * time.Second}},
		// Checksums only when an operation requires them: S3-compatible
		// servers differ in the newer flexible checksums.
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	})
	s := &S3{cfg: cfg, c: c}
	if err := s.ensureBucket(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *S3) ensureBucket(ctx context.Context) error {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	_, err := s.c.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: &s.cfg.Bucket})
	if err == nil {
		return nil
	}
	if !isNotFound(err) {
		return fmt.Errorf("objstore: bucket %q at %s: %w", s.cfg.Bucket, s.cfg.Endpoint, err)
	}
	_, err = s.c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: &s.cfg.Bucket})
	var owned *types.BucketAlreadyOwnedByYou
	if err != nil && !errors.As(err, &owned) {
		return fmt.Errorf("objstore: create bucket %q at %s: %w", s.cfg.Bucket, s.cfg.Endpoint, err)
	}
	return nil
}

// bound gives ctx the configured timeout when it has no deadline.
func (s *S3) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, s.cfg.Timeout)
}

// Put implements core.ObjectStore. The body travels with a CRC32C checksum
// the server verifies (x-amz-checksum-crc32c) instead of a SigV4 payload
// hash: SHA-256 of every uploaded byte cost a tenth of a busy node's CPU,
// CRC32C is nearly free. The request itself is still signed.
func (s *S3) Put(ctx context.Context, key string, body io.ReadSeeker, size int64) error {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	crc := crc32.New(castagnoli)
	if _, err := io.Copy(crc, body); err != nil {
		return fmt.Errorf("objstore: put %s: %w", key, err)
	}
	if _, err := body.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("objstore: put %s: %w", key, err)
	}
	sum := base64.StdEncoding.EncodeToString(crc.Sum(nil))
	_, err := s.c.PutObject(ctx, &s3.PutObjectInput{Bucket: &s.cfg.Bucket, Key: &key, Body: body, ContentLength: aws.Int64(size),
		ChecksumCRC32C: &sum}, s3.WithAPIOptions(v4.SwapComputePayloadSHA256ForUnsignedPayloadMiddleware))
	if err != nil {
		return fmt.Errorf("objstore: put %s: %w", key, err)
	}
	return nil
}

// Get implements core.ObjectStore. The reader is bound by ctx (without a
// deadline, by the configured timeout from the first byte on).
func (s *S3) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	out, err := s.c.GetObject(ctx, &s3.GetObjectInput{Bucket: &s.cfg.Bucket, Key: &key})
	if err != nil {
		if isNotFound(err) {
			return nil, fmt.Errorf("%w: %s", core.ErrObjectNotFound, key)
		}
		return nil, fmt.Errorf("objstore: get %s: %w", key, err)
	}
	return out.Body, nil
}

// Delete implements core.ObjectStore.
func (s *S3) Delete(ctx context.Context, key string) error {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	_, err := s.c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &s.cfg.Bucket, Key: &key})
	if err != nil && !isNotFound(err) {
		return fmt.Errorf("objstore: delete %s: %w", key, err)
	}
	return nil
}

// List implements core.ObjectStore.
func (s *S3) List(ctx context.Context, prefix string) ([]core.ObjectInfo, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	var out []core.ObjectInfo
	p := s3.NewListObjectsV2Paginator(s.c, &s3.ListObjectsV2Input{Bucket: &s.cfg.Bucket, Prefix: &prefix})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("objstore: list %s: %w", prefix, err)
		}
		for _, o := range page.Contents {
			oi := core.ObjectInfo{Key: aws.ToString(o.Key), Size: aws.ToInt64(o.Size)}
			if o.LastModified != nil {
				oi.LastModified = *o.LastModified
			}
			out = append(out, oi)
		}
	}
	return out, nil
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// isNotFound reports S3's answers for a missing key or bucket.
func isNotFound(err error) bool {
	var nk *types.NoSuchKey
	var nb *types.NoSuchBucket
	var nf *types.NotFound
	if errors.As(err, &nk) || errors.As(err, &nb) || errors.As(err, &nf) {
		return true
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "NoSuchKey", "NoSuchBucket", "NotFound":
			return true
		}
	}
	return false
}
