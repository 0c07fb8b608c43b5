package main

import (
	"bytes"
	"fmt"
	"math/rand/v2"
)

// valuePool is how many bytes of random values -values random draws from:
// record i's value is its own window, so a batch of records, which a codec
// compresses as one, holds no value twice.
const valuePool = 8 << 20

// newValues returns the value of record i for -values kind:
//   - "x": the letter x repeated (every run before the tenth session's).
//     Any codec shrinks it to almost nothing, so a broker that stores
//     batches compressed (Weir over Kafka, compression.type=producer)
//     writes almost nothing per record.
//   - "random": letters and digits drawn at random, a different stretch per
//     record. Valid in JSON; LZ codecs (snappy, lz4, S2: franz-go's default
//     and Weir's) cannot shrink it, entropy coders (gzip, zstd) by a quarter.
func newValues(kind string, size int) (func(i int) []byte, error) {
	switch kind {
	case "x":
		v := bytes.Repeat([]byte("x"), size)
		return func(int) []byte { return v }, nil
	case "random":
		const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"
		pool := make([]byte, max(valuePool, 2*size))
		rng := rand.New(rand.NewPCG(1, 2))
		for i := range pool {
			pool[i] = alphabet[rng.Uint32()%uint32(len(alphabet))]
		}
		windows := len(pool) / max(size, 1) // disjoint: no value repeats part of another
		return func(i int) []byte {
			off := (i % windows) * size
			return pool[off : off+size]
		}, nil
	}
	return nil, fmt.Errorf("-values %q: want x or random", kind)
}
