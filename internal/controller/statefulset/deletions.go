package statefulset

import (
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
)

// deletionMemory is how long a pod this controller deleted counts as terminating even if the
// informer cache still shows it untouched.
const deletionMemory = time.Minute

// deletions remembers the pods this controller deleted, so that a sync working from a cache
// that has not seen the deletion yet neither deletes them again nor counts them as healthy.
type deletions struct {
	mu  sync.Mutex
	at  map[types.UID]time.Time
	now func() time.Time
}

func newDeletions() *deletions {
	return &deletions{at: map[types.UID]time.Time{}, now: time.Now}
}

func (d *deletions) add(uid types.UID) {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.now()
	for k, t := range d.at {
		if now.Sub(t) > deletionMemory {
			delete(d.at, k)
		}
	}
	d.at[uid] = now
}

func (d *deletions) has(uid types.UID) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	t, ok := d.at[uid]
	return ok && d.now().Sub(t) <= deletionMemory
}
