package auth

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// GroupKeyName is the key of the state bucket (cluster.StateBucket) that holds
// the group's signing key.
const GroupKeyName = "session-key"

// GroupKey returns the group's signing key, kept in the group's state bucket kv
// under GroupKeyName: the first member to start creates it (KeyValue Create,
// which fails when the key exists), every other member reads it, so a session
// signed by one member is accepted by all.
func GroupKey(ctx context.Context, kv jetstream.KeyValue) ([]byte, error) {
	key := randomBytes(KeyBytes)
	_, err := kv.Create(ctx, GroupKeyName, key)
	if err == nil {
		return key, nil
	}
	if !errors.Is(err, jetstream.ErrKeyExists) {
		return nil, fmt.Errorf("auth: create the group's session key in %s: %w", kv.Bucket(), err)
	}
	e, err := kv.Get(ctx, GroupKeyName)
	if err != nil {
		return nil, fmt.Errorf("auth: read the group's session key from %s: %w", kv.Bucket(), err)
	}
	if len(e.Value()) < KeyBytes {
		return nil, fmt.Errorf("auth: the group's session key in %s is %d bytes, want %d: delete key %s of the bucket and restart the members", kv.Bucket(), len(e.Value()), KeyBytes, GroupKeyName)
	}
	return e.Value(), nil
}
