package actions

import (
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/orderwatch/orderwatch/store"
)

// KillSwitch is the runtime kill switch: while on, every new decision is recorded
// suppressed (kill_switch:runtime), approvals are refused and the executor holds
// its outbox. Its state is kept in Badger and survives restarts. It is safe for
// concurrent use; a nil *KillSwitch is off.
type KillSwitch struct {
	st *store.Store
	on atomic.Bool

	mu    sync.Mutex
	state KillState // guarded by mu
}

// KillState is who set the kill switch, when and why.
type KillState struct {
	On     bool      `json:"on"`
	By     string    `json:"by,omitempty"`
	Reason string    `json:"reason,omitempty"`
	At     time.Time `json:"at,omitzero"`
}

const settingKillSwitch = "killswitch"

// OpenKillSwitch loads the kill switch's state from the store.
func OpenKillSwitch(st *store.Store) (*KillSwitch, error) {
	k := &KillSwitch{st: st}
	v, err := st.Setting(settingKillSwitch)
	if err != nil {
		return nil, fmt.Errorf("actions: load kill switch: %w", err)
	}
	if v != nil {
		if err := json.Unmarshal(v, &k.state); err != nil {
			return nil, fmt.Errorf("actions: stored kill switch %q: %w", v, err)
		}
	}
	k.on.Store(k.state.On)
	return k, nil
}

// On reports whether the switch is on. It never blocks on I/O.
func (k *KillSwitch) On() bool { return k != nil && k.on.Load() }

// State returns the switch's state.
func (k *KillSwitch) State() KillState {
	if k == nil {
		return KillState{}
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.state
}

// Set turns the switch on or off; the change is durable when Set returns nil.
func (k *KillSwitch) Set(on bool, by, reason string, at time.Time) (KillState, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	s := KillState{On: on, By: by, Reason: reason, At: at.UTC()}
	v, _ := json.Marshal(s)
	if err := k.st.PutSetting(settingKillSwitch, v); err != nil {
		return k.state, fmt.Errorf("actions: store kill switch: %w", err)
	}
	k.state = s
	k.on.Store(on)
	return s, nil
}
