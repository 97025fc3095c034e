package whatif

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/orderwatch/orderwatch/internal/natstest"
)

// publishWhile is a writer that publishes more messages to the stream on its
// first write: what the live producers do while whatif reads.
type publishWhile struct {
	bytes.Buffer
	publish func()
}

func (p *publishWhile) Write(b []byte) (int, error) {
	if p.publish != nil {
		p.publish()
		p.publish = nil
	}
	return p.Buffer.Write(b)
}

// TestReadStreamStopsAtTheLastMessage: ReadStream reads the messages published
// from start up to the stream's last one when it began, one line each, and
// stops there even while more are published; it can read again at once (the
// server refused a second consumer of the same name with another start time)
// and leaves no consumer behind; an empty window reads nothing.
func TestReadStreamStopsAtTheLastMessage(t *testing.T) {
	ns := natstest.Start(t, nil)
	js := natstest.JetStream(t, ns.ClientURL())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "ORDERS", Subjects: []string{"orders.>"}}); err != nil {
		t.Fatal(err)
	}
	pub := func(from, to int) {
		for i := from; i < to; i++ {
			if _, err := js.Publish(ctx, "orders.note.added", []byte(fmt.Sprintf(`{"id":"e%d"}`, i))); err != nil {
				t.Fatal(err)
			}
		}
	}
	pub(0, 50)
	w := &publishWhile{publish: func() { pub(50, 80) }}
	n, err := ReadStream(ctx, js, "ORDERS", time.Now().Add(-time.Hour), w)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(w.String(), "\n"), "\n")
	if n != 50 || len(lines) != 50 || lines[0] != `{"id":"e0"}` || lines[49] != `{"id":"e49"}` {
		t.Fatalf("read %d messages, %d lines (%q ... %q): want e0 to e49", n, len(lines), lines[0], lines[len(lines)-1])
	}
	// Read twice within the consumer's inactive threshold: a consumer of
	// its own each time, deleted when done.
	var again bytes.Buffer
	if n, err := ReadStream(ctx, js, "ORDERS", time.Now().Add(-time.Hour), &again); err != nil || n != 80 {
		t.Fatalf("the second read: %d messages, %v; want 80", n, err)
	}
	st, err := js.Stream(ctx, "ORDERS")
	if err != nil {
		t.Fatal(err)
	}
	names := st.ConsumerNames(ctx)
	for name := range names.Name() {
		t.Errorf("consumer %s left on the stream", name)
	}
	// Nothing published after start: nothing read.
	var empty bytes.Buffer
	if n, err := ReadStream(ctx, js, "ORDERS", time.Now().Add(time.Hour), &empty); err != nil || n != 0 {
		t.Fatalf("a window after the last message: %d messages, %v", n, err)
	}
}
