package pipeline

import (
	"context"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Headers set on a dead-lettered message. The body and the original headers are
// kept as they were.
const (
	HeaderReason          = "Orderwatch-Dlq-Reason"
	HeaderDetail          = "Orderwatch-Dlq-Detail"
	HeaderOriginalSubject = "Orderwatch-Original-Subject"
	HeaderOriginalSeq     = "Orderwatch-Original-Sequence"
	HeaderOriginalMsgID   = "Orderwatch-Original-Msg-Id"
)

// JetStreamDeadLetter publishes a rejected message to orderwatch.dlq.<reason> and
// waits for the stream's acknowledgement. Its Nats-Msg-Id derives from the ORDERS
// sequence, so a retry after a crash does not store it twice.
func JetStreamDeadLetter(js jetstream.JetStream) DeadLetterFunc {
	return func(ctx context.Context, m *Message, reason, detail string) error {
		return deadLetter(ctx, js, m, reason, detail)
	}
}

func deadLetter(ctx context.Context, js jetstream.JetStream, m *Message, reason, detail string) error {
	orig := m.Header
	h := nats.Header{}
	for k, v := range orig {
		h[k] = append([]string(nil), v...)
	}
	if id := orig.Get(jetstream.MsgIDHeader); id != "" {
		h.Set(HeaderOriginalMsgID, id)
	}
	seq := strconv.FormatUint(m.Seq, 10)
	h.Set(jetstream.MsgIDHeader, "dlq-"+seq)
	h.Set(HeaderReason, reason)
	h.Set(HeaderDetail, detail)
	h.Set(HeaderOriginalSubject, m.Subject)
	h.Set(HeaderOriginalSeq, seq)
	msg := &nats.Msg{Subject: "orderwatch.dlq." + reason, Header: h, Data: m.Data}
	if _, err := js.PublishMsg(ctx, msg); err != nil {
		return fmt.Errorf("publish to %s (%s): %w", StreamDLQ, msg.Subject, err)
	}
	return nil
}
