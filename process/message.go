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
}

// DeadLetterFunc stores a message that cannot be accepted, with the reason. It must
// be durable when it returns nil: the message is acked after the batch commits.
type DeadLetterFunc func(ctx context.Context, m *Message, reason, detail string) error
