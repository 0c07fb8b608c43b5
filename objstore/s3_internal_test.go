package objstore

import (
	"context"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	tu "github.com/weir-broker/weir/internal/testutil"
)

// Put's integrity rests on the server checking the CRC32C header (the
// payload is not hashed into the signature): a wrong one is refused.
func TestS3RefusesABadChecksum(t *testing.T) {
	t.Parallel()
	srv := tu.StartS3(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := NewS3(ctx, S3Config{Endpoint: srv.Endpoint, Bucket: "crc", AccessKey: srv.AccessKey, SecretKey: srv.SecretKey})
	if err != nil {
		t.Fatal(err)
	}
	bad := base64.StdEncoding.EncodeToString([]byte{1, 2, 3, 4})
	_, err = s.c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("crc"), Key: aws.String("k"), Body: strings.NewReader("payload"),
		ContentLength: aws.Int64(7), ChecksumCRC32C: &bad}, s3.WithAPIOptions(v4.SwapComputePayloadSHA256ForUnsignedPayloadMiddleware))
	if err == nil {
		t.Fatal("a body that does not match its CRC32C was stored")
	}
	if err := s.Put(ctx, "k", strings.NewReader("payload"), 7); err != nil {
		t.Fatalf("a good put: %v", err)
	}
}
