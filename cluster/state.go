package cluster

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// StateBucket creates (or opens) orderwatch_<group>_state, the KV bucket where
// the members of a group keep what order events cannot rebuild and every member
// must see: the group's runtime kill switch, each member's rate-limit windows,
// and the governance of each order (its rules' episodes, cooldowns, decisions
// waiting for a person and deliveries not yet made). The owner of a partition
// writes its orders' keys; the next owner reads them when it takes the
// partition over. Keys:
//
//	killswitch                         the group's runtime kill switch
//	rate.<member>.<action>.<key>       a member's rate-limit window
//	order.<NN>.<base64url order id>    the governance of one order of partition NN
//	session-key                        the group's key that signs sessions (auth.GroupKey)
//
// replicas is the bucket's replication (1, or 3 on a JetStream cluster).
func StateBucket(ctx context.Context, js jetstream.JetStream, group string, replicas int) (jetstream.KeyValue, error) {
	if group == "" {
		group = DefaultGroup
	}
	if !validName(group) {
		return nil, fmt.Errorf("%w: group %q: use only letters, digits, '_' and '-', at most %d", ErrInvalidOptions, shown(group), maxName)
	}
	replicas = max(replicas, 1)
	bucket := "orderwatch_" + group + "_state"
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      bucket,
		Description: "orderwatch group " + group + ": kill switch, rate-limit windows and order governance",
		History:     1,
		Replicas:    replicas,
		Storage:     jetstream.FileStorage,
	})
	if err != nil {
		return nil, fmt.Errorf("cluster: create or open KV bucket %s (is JetStream enabled and reachable?): %w", bucket, err)
	}
	return kv, nil
}
