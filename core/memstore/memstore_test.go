package memstore_test

import (
	"testing"

	"github.com/weir-broker/weir/core"
	"github.com/weir-broker/weir/core/memstore"
	"github.com/weir-broker/weir/core/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) core.Store {
		return memstore.New(memstore.Config{SegmentBytes: 16 << 10})
	})
}
