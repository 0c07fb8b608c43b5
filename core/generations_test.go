package core_test

import (
	"sync"
	"testing"

	"github.com/weir-broker/weir/core/memstore"
)

// Reservations made at once never overlap, each starts above its floor,
// and the catalog ends at the highest number handed out.
func TestReserveGenerations(t *testing.T) {
	e := newEnv(t, memstore.Config{NodeID: 1})
	ctx, b := e.ctx, e.broker
	if _, _, err := b.ReserveGenerations(ctx, "g", 0, 0); err == nil {
		t.Fatal("reserving 0 numbers: no error")
	}
	first, last, err := b.ReserveGenerations(ctx, "g", 40, 10)
	if err != nil || first != 41 || last != 50 {
		t.Fatalf("first reservation above 40: [%d, %d] %v; want [41, 50]", first, last, err)
	}
	var mu sync.Mutex
	taken := map[int32]bool{}
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 25; i++ {
				f, l, err := b.ReserveGenerations(ctx, "g", 0, 3)
				if err != nil || l-f != 2 || f <= 50 {
					t.Errorf("reservation [%d, %d]: %v", f, l, err)
					return
				}
				mu.Lock()
				for n := f; n <= l; n++ {
					if taken[n] {
						t.Errorf("generation %d reserved twice", n)
					}
					taken[n] = true
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if got, err := b.ReservedGenerations("g"); err != nil || got != 50+4*25*3 {
		t.Fatalf("reserved: %d %v; want %d", got, err, 50+4*25*3)
	}
}
