package process

import (
	"context"

	"github.com/nats-io/nats.go"
)

// Message is one message of ORDERS, from JetStream or from a recorded file.
type Message struct {
	Seq     uint64 // stream sequence (the line number in a file)
	Subject string
	Data    []byte
	Header  nats.Header
	// Partition is the order partition the message came from, or
	// store.ContextPart (the context subjects), or FollowPart. Its dedupe
	// markers and counters are the partition's.
	Partition int
	// Mode says what the message may do; zero is ModeLive.
	Mode Mode
}

// Mode is what the processing of a message may do beyond the fold.
type Mode uint8

const (
	// ModeLive applies, scores, decides, and dead-letters what it cannot accept.
	ModeLive Mode = iota
	// ModeRebuild replays a partition taken over from another instance: the
	// fold, the timelines, the rescoring index and the partition's counters,
	// with no scoring, no decision and no dead-letter publish (the previous
	// owner did those).
	ModeRebuild
	// ModeFollow applies a context event to this instance's aggregates, and
	// neither counts nor dead-letters: every instance follows the context
	// subjects, and one of them accounts for them (ModeAccount).
	ModeFollow
	// ModeAccount counts a message of the context subjects and dead-letters
	// what cannot be accepted, without applying it (ModeFollow did): the
	// context subjects' owner does this once for the group.
	ModeAccount
)

// FollowPart is the partition number of the dedupe markers of ModeFollow
// messages: the context subjects, read apart from their owner's count.
const FollowPart = 0xFFFE

// DeadLetterFunc stores a message that cannot be accepted, with the reason. It must
// be durable when it returns nil: the message is acked after the batch commits.
type DeadLetterFunc func(ctx context.Context, m *Message, reason, detail string) error
