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

// deadLetter publishes the message to orderwatch.dlq.<reason> and waits for the
// stream's acknowledgement. Its Nats-Msg-Id derives from the ORDERS sequence, so a
// retry after a crash does not store it twice.
func (p *Pipeline) deadLetter(ctx context.Context, it *item) error {
	orig := it.msg.Headers()
	h := nats.Header{}
	for k, v := range orig {
		h[k] = append([]string(nil), v...)
	}
	if id := orig.Get(jetstream.MsgIDHeader); id != "" {
		h.Set(HeaderOriginalMsgID, id)
	}
	seq := strconv.FormatUint(it.seq, 10)
	h.Set(jetstream.MsgIDHeader, "dlq-"+seq)
	h.Set(HeaderReason, it.reason)
	h.Set(HeaderDetail, it.detail)
	h.Set(HeaderOriginalSubject, it.msg.Subject())
	h.Set(HeaderOriginalSeq, seq)
	msg := &nats.Msg{Subject: "orderwatch.dlq." + it.reason, Header: h, Data: it.msg.Data()}
	if _, err := p.opts.JetStream.PublishMsg(ctx, msg); err != nil {
		return fmt.Errorf("publish to %s (%s): %w", StreamDLQ, msg.Subject, err)
	}
	return nil
}
