package actions

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/orderwatch/orderwatch/store"
)

// KillSwitch is the runtime kill switch: while on, every new decision is recorded
// suppressed (kill_switch:runtime), approvals are refused and the executor holds
// its outbox. Its state is kept in Badger and survives restarts; once shared
// (Share) it is the group's, kept in the group's state bucket, and Badger keeps the
// last state known. It is safe for concurrent use; a nil *KillSwitch is off.
type KillSwitch struct {
	st    *store.Store
	on    atomic.Bool
	state atomic.Pointer[KillState] // never nil once open

	setMu sync.Mutex // one Set at a time; never held by readers

	mu  sync.Mutex
	kv  jetstream.KeyValue // guarded by mu; the group's state bucket once shared, else nil
	rev uint64             // guarded by mu; the bucket revision state was taken from
	log *slog.Logger       // guarded by mu; Share's
}

// KillState is who set the kill switch, when and why.
type KillState struct {
	On bool   `json:"on"`
	By string `json:"by,omitempty"`
	// OnBehalfOf is whom a machine client of the shared token said it acts for.
	OnBehalfOf string    `json:"on_behalf_of,omitempty"`
	Reason     string    `json:"reason,omitempty"`
	At         time.Time `json:"at,omitzero"`
}

func (s KillState) same(o KillState) bool {
	return s.On == o.On && s.By == o.By && s.OnBehalfOf == o.OnBehalfOf && s.Reason == o.Reason && s.At.Equal(o.At)
}

const settingKillSwitch = "killswitch"

// KeyKillSwitch is the key of the group's kill switch in its state bucket
// (cluster.StateBucket); the value is a KillState in JSON.
const KeyKillSwitch = "killswitch"

// Back-off between attempts to watch the group's kill switch again once its
// watch ended while the run goes on.
const (
	rewatchBackoff    = 100 * time.Millisecond
	rewatchMaxBackoff = 5 * time.Second
)

// OpenKillSwitch loads the kill switch's state from the store.
func OpenKillSwitch(st *store.Store) (*KillSwitch, error) {
	k := &KillSwitch{st: st, log: slog.New(slog.DiscardHandler)}
	v, err := st.Setting(settingKillSwitch)
	if err != nil {
		return nil, fmt.Errorf("actions: load kill switch: %w", err)
	}
	var s KillState
	if v != nil {
		if err := json.Unmarshal(v, &s); err != nil {
			return nil, fmt.Errorf("actions: stored kill switch %q: %w", v, err)
		}
	}
	k.hold(s)
	return k, nil
}

// hold makes s the state On and State answer.
func (k *KillSwitch) hold(s KillState) {
	k.state.Store(&s)
	k.on.Store(s.On)
}

// On reports whether the switch is on. It never blocks on I/O.
func (k *KillSwitch) On() bool { return k != nil && k.on.Load() }

// State returns the switch's state. It never blocks.
func (k *KillSwitch) State() KillState {
	if k == nil {
		return KillState{}
	}
	return *k.state.Load()
}

// Set sets the switch to s (on or off, who, why, when); the change is durable
// when Set returns nil.
// Once shared, Set writes the group's switch (every member applies it within a
// moment) and then the local copy; it fails, changing nothing, when the bucket
// cannot be written.
func (k *KillSwitch) Set(ctx context.Context, s KillState) (KillState, error) {
	k.setMu.Lock()
	defer k.setMu.Unlock()
	s.At = s.At.UTC()
	v, _ := json.Marshal(s)
	k.mu.Lock()
	kv := k.kv
	k.mu.Unlock()
	if kv == nil {
		if err := k.st.PutSetting(settingKillSwitch, v); err != nil {
			return k.State(), fmt.Errorf("actions: store kill switch: %w", err)
		}
		k.hold(s)
		return s, nil
	}
	// Not under mu: readers and the watch go on while the bucket is written.
	rev, err := kv.Put(ctx, KeyKillSwitch, v)
	if err != nil {
		return k.State(), fmt.Errorf("actions: set the group's kill switch in its bucket (is NATS reachable? the switch is unchanged, turn it again): %w", err)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if rev > k.rev { // else the watch applied a later change already
		k.rev = rev
		k.hold(s)
		k.keepLocal(v)
	}
	return s, nil
}

// Share makes the switch the group's: its state is the value of KeyKillSwitch in
// kv, the group's state bucket, which Set writes and every member follows. The
// bucket's value wins over the local copy; when the bucket has none yet, it is
// given the local copy, if this member ever had the switch set. Share returns once
// the switch holds the group's state, then follows the changes any member makes
// until ctx is done, in a goroutine of its own. On an error the switch stays as it
// was, this member's alone. Call it once, before the parts that read the switch
// start; log nil means discard.
func (k *KillSwitch) Share(ctx context.Context, kv jetstream.KeyValue, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "killswitch")
	w, err := kv.Watch(ctx, KeyKillSwitch)
	if err != nil {
		return fmt.Errorf("actions: watch the group's kill switch in bucket %s (is NATS reachable?): %w", kv.Bucket(), err)
	}
	var last jetstream.KeyValueEntry
	for initial := true; initial; {
		select {
		case e, ok := <-w.Updates():
			if !ok {
				return fmt.Errorf("actions: read the group's kill switch in bucket %s: the watch ended (is NATS reachable?)", kv.Bucket())
			}
			if e == nil { // the initial values are all in
				initial = false
				break
			}
			last = e
		case <-ctx.Done():
			_ = w.Stop()
			return fmt.Errorf("actions: read the group's kill switch in bucket %s: %w", kv.Bucket(), ctx.Err())
		}
	}
	k.mu.Lock()
	k.log = log
	k.mu.Unlock()
	local := k.State()
	switch {
	case last != nil:
		k.apply(last)
	case local != KillState{}:
		// The first member of a group to share it (an upgrade): the group's switch
		// starts as this member's.
		v, _ := json.Marshal(local)
		rev, err := kv.Create(ctx, KeyKillSwitch, v)
		if err != nil && !errors.Is(err, jetstream.ErrKeyExists) {
			_ = w.Stop()
			return fmt.Errorf("actions: give the group's bucket %s this member's kill switch: %w", kv.Bucket(), err)
		}
		if err == nil {
			k.mu.Lock()
			k.rev = max(k.rev, rev)
			k.mu.Unlock()
			log.Info("kill switch: the group's starts as this member's", "on", local.On, "by", local.By)
		}
		// On ErrKeyExists another member was first: its value comes through the watch.
	}
	k.mu.Lock()
	k.kv = kv // Set writes the group's from here on
	k.mu.Unlock()
	go k.follow(ctx, kv, w)
	return nil
}

// follow applies the changes of the group's kill switch that w delivers until
// ctx is done, watching again (on a capped back-off) when the watch ends.
func (k *KillSwitch) follow(ctx context.Context, kv jetstream.KeyValue, w jetstream.KeyWatcher) {
	defer func() {
		if w != nil {
			_ = w.Stop()
		}
	}()
	backoff := rewatchBackoff
	for {
		if w == nil {
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			var err error
			if w, err = kv.Watch(ctx, KeyKillSwitch); err != nil {
				if ctx.Err() == nil {
					k.logger().Warn("kill switch: watch the group's again failed, retrying", "backoff", backoff, "err", err)
				}
				w, backoff = nil, min(2*backoff, rewatchMaxBackoff)
				continue
			}
			backoff = rewatchBackoff
		}
		select {
		case <-ctx.Done():
			return
		case e, ok := <-w.Updates():
			switch {
			case !ok:
				if ctx.Err() == nil {
					k.logger().Warn("kill switch: the watch of the group's ended, watching again")
				}
				w = nil
			case e != nil: // nil ends the initial values of a watch
				k.apply(e)
			}
		}
	}
}

// apply takes the group's kill switch from a bucket entry newer than the state
// held; a deleted or purged key is off.
func (k *KillSwitch) apply(e jetstream.KeyValueEntry) {
	var s KillState
	if e.Operation() == jetstream.KeyValuePut {
		if err := json.Unmarshal(e.Value(), &s); err != nil {
			k.logger().Error("kill switch: the group's is unreadable, kept as it was: set it again",
				"revision", e.Revision(), "bytes", len(e.Value()), "err", err)
			return
		}
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if e.Revision() <= k.rev {
		return
	}
	k.rev = e.Revision()
	if s.same(k.State()) {
		return
	}
	k.hold(s)
	v, _ := json.Marshal(s)
	k.keepLocal(v)
	k.log.Warn("kill switch: applied the group's state", "on", s.On, "by", s.By, "reason", s.Reason, "revision", e.Revision())
}

// keepLocal stores v as the last group state known, for a start while NATS is
// unreachable. The caller holds mu; the group's state is set already, so a
// failure is logged, not returned.
func (k *KillSwitch) keepLocal(v []byte) {
	if err := k.st.PutSetting(settingKillSwitch, v); err != nil {
		k.log.Warn("kill switch: local copy of the group's not updated: a start without NATS would use an older one", "err", err)
	}
}

func (k *KillSwitch) logger() *slog.Logger {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.log
}
