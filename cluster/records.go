package cluster

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Key prefixes in the group's bucket.
const (
	leasePrefix  = "lease."
	memberPrefix = "member."
)

// leaseRecord is the value of lease.<NN>. Holder is "" when the lease was released.
type leaseRecord struct {
	Holder     string `json:"holder"`
	Epoch      uint64 `json:"epoch"`
	Previous   string `json:"previous,omitempty"`
	ReleasedBy string `json:"released_by,omitempty"`
	At         string `json:"at"` // the writer's clock, RFC3339; informational only
}

// memberRecord is the value of member.<member>, put at every Renew.
type memberRecord struct {
	Member     string          `json:"member"`
	API        string          `json:"api,omitempty"`
	Partitions []int           `json:"partitions"`
	Epochs     []uint64        `json:"epochs"`
	Started    string          `json:"started"`
	Stats      json.RawMessage `json:"stats,omitempty"`
}

// keys names the keys of one group's bucket.
type keys struct {
	width int // digits of a partition number
}

func newKeys(partitions int) keys {
	return keys{width: max(2, len(strconv.Itoa(partitions-1)))}
}

func (k keys) lease(p int) string { return fmt.Sprintf("%s%0*d", leasePrefix, k.width, p) }

func memberKey(member string) string { return memberPrefix + member }

// parseLease returns the partition of a lease key, or false if key is not the
// lease key of a partition in [0, partitions).
func (k keys) parseLease(key string, partitions int) (int, bool) {
	s, ok := strings.CutPrefix(key, leasePrefix)
	if !ok || len(s) != k.width {
		return 0, false
	}
	p, err := strconv.Atoi(s)
	if err != nil || p < 0 || p >= partitions {
		return 0, false
	}
	return p, true
}

func rfc3339(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }
