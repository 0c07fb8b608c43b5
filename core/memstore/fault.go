package memstore

import (
	"fmt"

	"github.com/weir-broker/weir/core"
)

// Op names the writes a Fault applies to; values combine with |.
type Op uint16

// Writes a Fault can fail.
const (
	OpAppend  Op = 1 << iota // Partition.Append
	OpTxn                    // Partition.ApplyTxn and ProposeTxn
	OpTrim                   // Partition.TrimTo
	OpCatalog                // Store.CatalogPut and CatalogDelete
	OpCommit                 // Store.CommitOffsets
	OpTopic                  // Store.CreateTopic, AddPartitions and DeleteTopic
	OpSync                   // Store.CatalogSync
)

// Fault makes the next writes of a partition (Partition.Inject) or of the
// store (Store.Inject) fail, as a lost leader, a timeout or a full disk
// would. Faults armed earlier are used first.
type Fault struct {
	Ops   Op    // the writes it applies to; 0: every write of its target
	Count int   // how many writes fail; 0: one
	Err   error // what they return; nil: an error wrapping core.ErrUnavailable
	// Applied makes the write take effect before Err is returned: the
	// caller cannot tell it from a write that was lost (an unknown
	// outcome, like a proposal that timed out after it committed).
	Applied bool
}

func (f *Fault) err() error {
	if f.Err != nil {
		return f.Err
	}
	if f.Applied {
		return fmt.Errorf("%w: injected fault (the write was applied)", core.ErrUnavailable)
	}
	return fmt.Errorf("%w: injected fault", core.ErrUnavailable)
}

// faults is a queue of armed faults. Its owner guards it.
type faults []*Fault

func (fs *faults) add(f Fault) {
	if f.Count <= 0 {
		f.Count = 1
	}
	*fs = append(*fs, &f)
}

// guard runs apply as one write, under the lock of the faults' owner: an
// armed fault for op fails it before apply or, with Applied, after; notify
// runs once apply has run (whatever it returned).
func (fs *faults) guard(op Op, apply func() error, notify func()) error {
	f := fs.take(op)
	if f != nil && !f.Applied {
		return f.err()
	}
	err := apply()
	notify()
	if f != nil {
		return f.err()
	}
	return err
}

// take returns the first armed fault for op, using one of its writes, or nil.
func (fs *faults) take(op Op) *Fault {
	for i, f := range *fs {
		if f.Ops&op == 0 {
			continue
		}
		f.Count--
		if f.Count == 0 {
			*fs = append((*fs)[:i:i], (*fs)[i+1:]...)
		}
		return f
	}
	return nil
}
