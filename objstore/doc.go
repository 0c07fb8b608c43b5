// Package objstore implements core.ObjectStore, the remote tier of tiered
// storage (docs/tiered-storage.md): S3 on any S3-compatible server (AWS S3,
// MinIO, versitygw, Ceph RGW...) through the AWS SDK for Go v2 with
// path-style addressing, and Mem, an in-memory store with failure injection
// for tests.
//
//	s, err := objstore.NewS3(ctx, objstore.S3Config{
//		Endpoint: "http://127.0.0.1:7070", Bucket: "weir",
//		AccessKey: key, SecretKey: secret, // Region defaults to us-east-1
//	}) // creates the bucket when it is missing
//	err = s.Put(ctx, "weir/t/0/seg", file, size)
//
// raftlog takes the store as raftlog.Config.Tiered.Store; internal/server
// builds it from the node's --tiered-storage-* flags.
package objstore
