package pipeline

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/textproto"
	"strconv"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Headers set on a dead-lettered message. The body and the original headers are
// kept as they were, unless they do not fit in one NATS message with these
// headers (the server's max_payload): the body is then cut to what fits and the
// truncation headers say so, with the original body's size and sha256.
const (
	HeaderReason          = "Orderwatch-Dlq-Reason"
	HeaderDetail          = "Orderwatch-Dlq-Detail"
	HeaderOriginalSubject = "Orderwatch-Original-Subject"
	HeaderOriginalSeq     = "Orderwatch-Original-Sequence"
	HeaderOriginalMsgID   = "Orderwatch-Original-Msg-Id"
	HeaderTruncated       = "Orderwatch-Truncated"
	HeaderOriginalSize    = "Orderwatch-Original-Size"
	HeaderOriginalSHA256  = "Orderwatch-Original-Sha256"
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
	return deadLetterAs(ctx, js, m, reason, detail, "dlq-"+strconv.FormatUint(m.Seq, 10))
}

// deadLetterAs is deadLetter with the dead letter's Nats-Msg-Id: the bridge's
// (from FOREIGN's sequence) must not meet ORDERS' in the dedupe window.
func deadLetterAs(ctx context.Context, js jetstream.JetStream, m *Message, reason, detail, msgID string) error {
	seq := strconv.FormatUint(m.Seq, 10)
	h := dlqHeader(m, reason, detail, seq, msgID, true)
	msg := &nats.Msg{Subject: "orderwatch.dlq." + reason, Header: h, Data: m.Data}
	if limit := maxPayload(js); limit > 0 && headerSize(h)+len(m.Data) > limit {
		// The copy does not fit: keep what fits of the body, and say what the
		// whole was. The original headers go too when even they do not fit.
		sum := sha256.Sum256(m.Data)
		for _, keep := range []bool{true, false} {
			h = dlqHeader(m, reason, detail, seq, msgID, keep)
			h.Set(HeaderTruncated, "true")
			h.Set(HeaderOriginalSize, strconv.Itoa(len(m.Data)))
			h.Set(HeaderOriginalSHA256, hex.EncodeToString(sum[:]))
			if headerSize(h) <= limit {
				break
			}
		}
		msg.Header = h
		msg.Data = m.Data[:max(0, min(len(m.Data), limit-headerSize(h)))]
	}
	if _, err := js.PublishMsg(ctx, msg); err != nil {
		return fmt.Errorf("publish to %s (%s): %w", StreamDLQ, msg.Subject, err)
	}
	return nil
}

// dlqHeader is the header of m's dead letter, with m's own headers when
// original.
func dlqHeader(m *Message, reason, detail, seq, msgID string, original bool) nats.Header {
	h := nats.Header{}
	if original {
		for k, v := range m.Header {
			h[k] = append([]string(nil), v...)
		}
	}
	if id := m.Header.Get(jetstream.MsgIDHeader); id != "" {
		h.Set(HeaderOriginalMsgID, id)
	}
	h.Set(jetstream.MsgIDHeader, msgID)
	h.Set(HeaderReason, reason)
	h.Set(HeaderDetail, detail)
	h.Set(HeaderOriginalSubject, m.Subject)
	h.Set(HeaderOriginalSeq, seq)
	return h
}

// maxPayload is the server's max_payload for js's connection; 0 when unknown.
func maxPayload(js jetstream.JetStream) int {
	if nc := js.Conn(); nc != nil {
		return int(nc.MaxPayload())
	}
	return 0
}

// headerSize is the encoded size of h, as nats.go counts it against the
// max_payload.
func headerSize(h nats.Header) int {
	if len(h) == 0 {
		return 0
	}
	n := len("NATS/1.0\r\n\r\n")
	for k, vs := range h {
		for _, v := range vs {
			n += len(k) + len(textproto.TrimString(v)) + 4 // ": " and CRLF
		}
	}
	return n
}
