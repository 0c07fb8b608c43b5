package core

import "testing"

// Vectors from Kafka's own partitioner tests (UtilsTest.testMurmur2), so a
// key lands where a Kafka producer puts it.
func TestMurmur2MatchesKafka(t *testing.T) {
	cases := map[string]int32{
		"21":                         -973932308,
		"foobar":                     -790332482,
		"a-little-bit-long-string":   -985981536,
		"a-little-bit-longer-string": -1486304829,
		"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
		"abc": 479470107,
	}
	for in, want := range cases {
		if got := murmur2([]byte(in)); got != want {
			t.Errorf("murmur2(%q) = %d, want %d", in, got, want)
		}
	}
}

func TestKeyPartitionStable(t *testing.T) {
	for _, parts := range []int{1, 3, 7, 64} {
		p := KeyPartition([]byte("order-42"), parts)
		if p < 0 || p >= parts {
			t.Fatalf("partition %d out of [0,%d)", p, parts)
		}
		if KeyPartition([]byte("order-42"), parts) != p {
			t.Fatal("same key, different partition")
		}
	}
}
