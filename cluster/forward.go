package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
)

// Headers of an API request carried between members.
const (
	// HeaderForwarded marks a request another member forwarded: it is answered
	// here, never forwarded again. Its value is the member it came from.
	HeaderForwarded = "Orderwatch-Forwarded"
	// HeaderPrincipal carries who makes a forwarded request, as the forwarding
	// member resolved it (sealed with the group's key). The member that serves it
	// believes it only on a request that came over NATS (ForwardedFrom), never on
	// one that came over HTTP.
	HeaderPrincipal = "Orderwatch-Principal"
	hdrMethod       = "Orderwatch-Method"
	hdrTarget       = "Orderwatch-Target" // path and query
	hdrStatus       = "Orderwatch-Status"
)

// forwardTimeout bounds a forwarded request.
const forwardTimeout = 5 * time.Second

// Forwarded is a member's answer to a forwarded request.
type Forwarded struct {
	Status      int
	ContentType string
	Body        []byte
}

// Peers carries API requests to the other members of the group over NATS
// request/reply (a nats micro service per member, "orderwatch-api", endpoint
// subject orderwatch.<group>.api.<member>), so that any member answers for any
// order, decision and approval. The member that receives a forwarded request
// serves it with its own API handler, token checks included.
type Peers struct {
	nc          *nats.Conn
	m           *Membership
	partitionOf func(order string) int
	svc         micro.Service
	log         *slog.Logger
}

// NewPeers returns the group's peers as this member reaches them; Serve starts
// answering theirs. partitionOf gives an order's partition.
func NewPeers(nc *nats.Conn, m *Membership, partitionOf func(order string) int, log *slog.Logger) *Peers {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Peers{nc: nc, m: m, partitionOf: partitionOf, log: log.With("component", "peers")}
}

// Serve starts answering the requests other members forward to this one with h,
// until Stop.
func (p *Peers) Serve(h http.Handler) error {
	svc, err := micro.AddService(p.nc, micro.Config{
		Name:        "orderwatch-api",
		Version:     "1.0.0",
		Description: "orderwatch API requests forwarded between the members of a group",
		Metadata:    map[string]string{"group": p.m.opts.Group, "member": p.m.opts.Member},
		Endpoint: &micro.EndpointConfig{
			Subject: p.subject(p.m.opts.Member),
			Handler: micro.HandlerFunc(func(req micro.Request) { p.serve(req, h) }),
		},
	})
	if err != nil {
		return fmt.Errorf("cluster: serve forwarded API requests on %s: %w", p.subject(p.m.opts.Member), err)
	}
	p.svc = svc
	// Subscribed on the server before the other members may ask.
	if err := p.nc.Flush(); err != nil {
		return fmt.Errorf("cluster: serve forwarded API requests: %w", err)
	}
	return nil
}

// Stop stops answering forwarded requests.
func (p *Peers) Stop() error {
	if p.svc == nil {
		return nil
	}
	return p.svc.Stop()
}

func (p *Peers) subject(member string) string {
	return "orderwatch." + p.m.opts.Group + ".api." + member
}

// serve answers one forwarded request with the local handler.
func (p *Peers) serve(req micro.Request, h http.Handler) {
	in := req.Headers()
	method, target := nats.Header(in).Get(hdrMethod), nats.Header(in).Get(hdrTarget)
	r, err := http.NewRequest(method, target, bytes.NewReader(req.Data()))
	if err != nil || method == "" || len(target) == 0 || target[0] != '/' {
		_ = req.Error("400", "not a forwarded API request", nil)
		return
	}
	for _, k := range []string{"Authorization", "Content-Type", HeaderPrincipal} {
		if v := nats.Header(in).Get(k); v != "" {
			r.Header.Set(k, v)
		}
	}
	from := nats.Header(in).Get(HeaderForwarded)
	if from == "" {
		from = "?"
	}
	r.Header.Set(HeaderForwarded, from)
	r = r.WithContext(context.WithValue(r.Context(), forwardedKey{}, from))
	rec := httptest.NewRecorder()
	if !p.serveHTTP(h, rec, r) {
		_ = req.Error("500", "the request failed on member "+p.m.opts.Member+": see its log", nil)
		return
	}
	body := rec.Body.Bytes()
	status := rec.Code
	if limit := int(p.nc.MaxPayload()) - 4096; len(body) > limit {
		status = http.StatusBadGateway
		body = fmt.Appendf(nil, `{"error":"the answer of member %s is %d bytes, more than NATS carries (%d): ask its API directly"}`,
			p.m.opts.Member, len(body), limit)
	}
	hdr := micro.Headers{hdrStatus: {strconv.Itoa(status)}, "Content-Type": {rec.Header().Get("Content-Type")}}
	if err := req.Respond(body, micro.WithHeaders(hdr)); err != nil {
		p.log.Warn("answer a forwarded request", "target", target, "err", err)
	}
}

// serveHTTP serves a forwarded request as net/http serves one: a handler that
// panics fails its request, logged, not the member (a micro handler that panics
// would end the process).
func (p *Peers) serveHTTP(h http.Handler, w http.ResponseWriter, r *http.Request) (ok bool) {
	defer func() {
		if v := recover(); v != nil {
			p.log.Error("forwarded request panicked", "method", r.Method, "target", r.URL.RequestURI(), "panic", fmt.Sprint(v))
			ok = false
		}
	}()
	h.ServeHTTP(w, r)
	return true
}

type forwardedKey struct{}

// ForwardedFrom returns the member that forwarded the request whose context ctx
// is, over NATS; ok is false for a request that came over HTTP, whatever
// headers it carries.
func ForwardedFrom(ctx context.Context) (member string, ok bool) {
	member, ok = ctx.Value(forwardedKey{}).(string)
	return member, ok
}

// Forward asks member to serve r (whose body is body) and returns its answer.
func (p *Peers) Forward(ctx context.Context, member string, r *http.Request, body []byte) (Forwarded, error) {
	ctx, cancel := context.WithTimeout(ctx, forwardTimeout)
	defer cancel()
	msg := nats.NewMsg(p.subject(member))
	msg.Data = body
	msg.Header.Set(hdrMethod, r.Method)
	msg.Header.Set(hdrTarget, r.URL.RequestURI())
	msg.Header.Set(HeaderForwarded, p.m.opts.Member)
	for _, k := range []string{"Authorization", "Content-Type", HeaderPrincipal} {
		if v := r.Header.Get(k); v != "" {
			msg.Header.Set(k, v)
		}
	}
	reply, err := p.nc.RequestMsgWithContext(ctx, msg)
	if err != nil {
		if errors.Is(err, nats.ErrNoResponders) {
			return Forwarded{}, fmt.Errorf("cluster: member %s does not answer (gone?): %w", member, err)
		}
		return Forwarded{}, fmt.Errorf("cluster: forward %s %s to member %s: %w", r.Method, r.URL.Path, member, err)
	}
	if code := reply.Header.Get(micro.ErrorCodeHeader); code != "" {
		return Forwarded{}, fmt.Errorf("cluster: member %s refused the request: %s %s", member, code, reply.Header.Get(micro.ErrorHeader))
	}
	status, err := strconv.Atoi(reply.Header.Get(hdrStatus))
	if err != nil {
		return Forwarded{}, fmt.Errorf("cluster: member %s answered without a status", member)
	}
	return Forwarded{Status: status, ContentType: reply.Header.Get("Content-Type"), Body: reply.Data}, nil
}

// Self is this member's id.
func (p *Peers) Self() string { return p.m.opts.Member }

// OwnerOf returns the member holding the lease of an order's partition, "" when
// no live member does.
func (p *Peers) OwnerOf(order string) string {
	part := p.partitionOf(order)
	for _, l := range p.m.Status().Leases {
		if l.Partition == part && l.Alive {
			return l.Holder
		}
	}
	return ""
}

// Others returns the other members alive, in id order.
func (p *Peers) Others() []string {
	var out []string
	for _, m := range p.m.Status().Members {
		if m.Alive && m.Member != p.m.opts.Member {
			out = append(out, m.Member)
		}
	}
	slices.Sort(out)
	return out
}
