package whatif

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// streamIdle is how long ReadStream waits for the next message before it asks
// the server whether any is left; it gives up after streamIdles waits in a
// row that the server says had messages pending.
const (
	streamIdle  = 2 * time.Second
	streamIdles = 15
)

// ReadStream writes the messages of a JetStream stream, from the first one
// published at or after start up to the stream's last message when it is
// called, to w, one per line (NDJSON, as process.Replay reads). It reads them
// through an ordered consumer: an ephemeral consumer of its own, deleted when
// it is done (else the server drops it 30 s after its last use), which leaves
// the durable consumers (the live pipeline's) as they are. It returns the
// messages written.
func ReadStream(ctx context.Context, js jetstream.JetStream, stream string, start time.Time, w io.Writer) (int, error) {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return 0, fmt.Errorf("whatif: stream %s: %w", stream, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("whatif: stream %s: %w", stream, err)
	}
	last := info.State.LastSeq
	if info.State.Msgs == 0 || last == 0 {
		return 0, nil
	}
	cons, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartTimePolicy, OptStartTime: &start,
		// A name of its own: a consumer of a run a moment ago may still be
		// there, and the server refuses to move its start time.
		InactiveThreshold: 30 * time.Second, NamePrefix: "orderwatch-whatif-" + strconv.FormatInt(time.Now().UnixNano(), 36),
	})
	if err != nil {
		return 0, fmt.Errorf("whatif: ordered consumer on %s: %w", stream, err)
	}
	defer func() {
		// The server drops it after InactiveThreshold anyway: a failed
		// delete leaves it that long, nothing more.
		if ci := cons.CachedInfo(); ci != nil {
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			_ = js.DeleteConsumer(dctx, stream, ci.Name)
			cancel()
		}
	}()
	it, err := cons.Messages(jetstream.PullMaxMessages(1024))
	if err != nil {
		return 0, fmt.Errorf("whatif: read %s: %w", stream, err)
	}
	defer it.Stop()
	var (
		n, idle int
		line    []byte
	)
	for {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		msg, err := it.Next(jetstream.NextMaxWait(streamIdle))
		if errors.Is(err, nats.ErrTimeout) {
			// Nothing came: no message after start, or the ones up to last were
			// removed since. Done when the server has none pending.
			ci, ierr := cons.Info(ctx)
			if ierr != nil {
				return n, fmt.Errorf("whatif: read %s: %w", stream, ierr)
			}
			if ci.NumPending == 0 {
				return n, nil
			}
			if idle++; idle == streamIdles {
				return n, fmt.Errorf("whatif: read %s: %d messages pending, none delivered in %s: is the server overloaded? try again", stream, ci.NumPending, streamIdles*streamIdle)
			}
			continue
		}
		if err != nil {
			return n, fmt.Errorf("whatif: read %s: %w", stream, err)
		}
		idle = 0
		meta, err := msg.Metadata()
		if err != nil {
			return n, fmt.Errorf("whatif: read %s: %w", stream, err)
		}
		seq := meta.Sequence.Stream
		if seq > last {
			return n, nil
		}
		line = appendLine(line[:0], msg.Data())
		if _, err := w.Write(line); err != nil {
			return n, fmt.Errorf("whatif: write events: %w", err)
		}
		n++
		if seq == last {
			return n, nil
		}
	}
}

// appendLine appends data and a newline to b. An event spread over lines
// (indented JSON) is compacted onto one; bytes that are not JSON get spaces
// for their newlines, and the replay dead-letters them as bad JSON.
func appendLine(b, data []byte) []byte {
	if bytes.IndexByte(data, '\n') < 0 {
		return append(append(b, data...), '\n')
	}
	buf := bytes.NewBuffer(b)
	if json.Compact(buf, data) == nil {
		return append(buf.Bytes(), '\n')
	}
	start := len(b)
	b = append(b, data...)
	for i := start; i < len(b); i++ {
		if b[i] == '\n' || b[i] == '\r' {
			b[i] = ' '
		}
	}
	return append(b, '\n')
}
