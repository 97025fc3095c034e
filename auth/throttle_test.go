package auth

import (
	"fmt"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"
)

// TestThrottleUnderAFlood: the sign-in throttle stays bounded and keeps what
// it holds back. Many names from one address and one name from many
// addresses add a handful of keys (the address, then the name, is held back
// before its password is compared, so nothing more is tracked); a flood of
// new keys from many addresses and names (MaxKeys twice over) leaves at
// most MaxKeys and drops none of the keys that hold an attempt back, so a
// flood cannot buy a held-back name new guesses, nor reset its doubling waits.
func TestThrottleUnderAFlood(t *testing.T) {
	a, _ := newTestAuth(t, Options{})
	// The first names are users (an unknown name's password check costs a
	// hash of DefaultPasswordCost, four times a test user's under -race).
	names := []string{"amy", "vic", "amy"}
	for i := len(names); i < 1000; i++ {
		names = append(names, fmt.Sprintf("name%d", i))
	}
	for _, name := range names {
		req := httptest.NewRequest("POST", "/signin", nil)
		req.RemoteAddr = "192.0.2.7:5555"
		_, _ = a.SignIn(req, name, "wrong password")
	}
	if n := a.Throttle().Len(); n > 2*FreeFailures {
		t.Errorf("1000 names from one address: the throttle holds %d keys, want at most %d", n, 2*FreeFailures)
	}
	if w := a.Throttle().Wait("addr:192.0.2.7"); w == 0 {
		t.Error("the address that tried 1000 names is not held back")
	}
	for i := range 1000 {
		req := httptest.NewRequest("POST", "/signin", nil)
		req.RemoteAddr = fmt.Sprintf("[2001:db8::%x]:5555", i)
		_, _ = a.SignIn(req, "vic", "wrong password")
	}
	if n := a.Throttle().Len(); n > 4*FreeFailures {
		t.Errorf("then vic from 1000 addresses: the throttle holds %d keys, want at most %d", n, 4*FreeFailures)
	}
	if w := a.Throttle().Wait("name:vic"); w == 0 {
		t.Error("the name tried from 1000 addresses is not held back")
	}

	now := time.Date(2026, 12, 5, 11, 0, 0, 0, time.UTC)
	th := NewThrottle(func() time.Time { return now }) // the flood comes within a second
	var held []string
	for i := range 100 {
		k := fmt.Sprintf("name:held%d", i)
		for range FreeFailures {
			th.Failed(k)
		}
		held = append(held, k)
	}
	for i := range MaxKeys {
		th.Failed("name:flood"+strconv.Itoa(i), "addr:198.51.100."+strconv.Itoa(i))
	}
	if n := th.Len(); n > MaxKeys {
		t.Errorf("after the flood the throttle holds %d keys, want at most %d", n, MaxKeys)
	}
	lost := func() (n int) {
		for _, k := range held {
			if th.Failures(k) != FreeFailures {
				n++
			}
		}
		return n
	}
	if n := lost(); n > 0 {
		t.Errorf("the flood dropped %d of the %d held-back keys, want none", n, len(held))
	}
	// Past their wait, the keys still remember their failures (the next wait
	// doubles): another flood keeps them too.
	now = now.Add(MaxWait)
	for i := range 2 * MaxKeys {
		th.Failed("name:again" + strconv.Itoa(i))
	}
	if n := lost(); n > 0 || th.Len() > MaxKeys {
		t.Errorf("a flood past their wait dropped %d of the %d keys past their free failures (%d keys), want none", n, len(held), th.Len())
	}
}
