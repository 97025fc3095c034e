package actions

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/orderwatch/orderwatch/store"
)

// RateShareOptions configures a RateShare. The zero value of every field but
// Bucket, Member and Store means its default.
type RateShareOptions struct {
	// Bucket is the group's state bucket (cluster.StateBucket). Required.
	Bucket jetstream.KeyValue
	// Member is this member's id in the group, [A-Za-z0-9_-]. Required.
	Member string
	// Store holds this member's own windows. Required.
	Store *store.Store
	// Interval is how often the windows changed since the last time are published;
	// 0 means 250ms.
	Interval time.Duration
	// MaxWindows bounds the other members' windows held in memory, and the changed
	// windows waiting to be published; 0 means 100000. What does not fit is counted
	// in orderwatch_ratelimit_windows_skipped_total.
	MaxWindows int
	// Clock says which times have left the hour, to forget them; nil means
	// time.Now. Decisions count on their own time (Input.At), not on it.
	Clock      func() time.Time
	Logger     *slog.Logger          // nil means discard
	Registerer prometheus.Registerer // nil means no metrics
}

// RateShare makes the rate limits the group's: it publishes this member's
// rate-limit windows to the group's state bucket, under
// rate.<member>.<action>.<key>, and holds the other members' windows, which
// Decide counts with this member's own (Policy.UseRateShare). The member's own
// windows stay in Badger, written in the pipeline's batch; RateShare publishes a
// window once its change is committed, at most every Interval, so the pipeline
// never waits on NATS. A member's windows stay in the bucket after it stops and
// count until their times are an hour old; a member reads its own back when it
// opens, into Badger, so a fresh data dir still counts its past hour.
//
// The limit is the group's only approximately: two members deciding within the
// publication delay (Interval plus the bucket's round trip) may both fire, and a
// member killed with SIGKILL loses what it decided in its last Interval.
//
// Decide may call it concurrently with Run; Run blocks. A nil *RateShare counts
// nothing and publishes nothing: the limits are this member's alone.
type RateShare struct {
	opts   RateShareOptions
	log    *slog.Logger
	prefix string // rate.<member>.

	mu sync.RWMutex
	// peers holds the other members' windows by what they count; held is how
	// many windows, byKey where each is by bucket key.
	peers map[rateKey][]peerWindow // guarded by mu
	byKey map[string]rateKey       // guarded by mu
	held  int                      // guarded by mu

	dirtyMu sync.Mutex
	dirty   map[rateKey]dirtyMark // guarded by dirtyMu

	// Only Open and Run touch these: own is this member's keys in the bucket as
	// it last wrote them; expired the revisions of the other members' keys found
	// with no time in the hour, for the next sweep to delete; invalidSeen whether
	// an invalid entry was logged; failing whether the last publication failed.
	own         map[string]ownWindow
	expired     map[string]uint64
	invalidSeen bool
	failing     bool

	peerWindows prometheus.Gauge
	skipped     *prometheus.CounterVec
	publishErrs prometheus.Counter
}

// rateKey names a window: an action, a scope and its value.
type rateKey struct{ action, scope, value string }

// peerWindow is one other member's window.
type peerWindow struct {
	key   string  // in the bucket
	rev   uint64  // the bucket's revision of key
	times []int64 // unix nanos
}

// dirtyMark says a window changed: at is the time the change added, ticks how
// many publications found it not committed yet.
type dirtyMark struct {
	at    int64
	ticks int
}

// ownWindow is one of this member's keys in the bucket.
type ownWindow struct {
	rev    uint64
	newest int64
}

// rateEntry is the value of a window in the bucket.
type rateEntry struct {
	Action string  `json:"action"`
	Scope  string  `json:"scope"`
	Value  string  `json:"value"`
	Times  []int64 `json:"times"` // unix nanoseconds, ascending
}

const (
	// rateKeys is the filter of every member's windows in the state bucket.
	rateKeys = "rate.>"
	// rateGiveUp is how many publications wait for a change to be committed
	// before the window is published as committed: the batch was discarded (a
	// redelivery decides again and marks it again).
	rateGiveUp = 20
	// rateFlushTimeout bounds the last publication, when Run stops.
	rateFlushTimeout = 5 * time.Second
	// rateSweepEvery is how often windows whose times all left the hour are
	// forgotten and deleted from the bucket; rateSweepMax bounds the deletions
	// of one sweep.
	rateSweepEvery = time.Minute
	rateSweepMax   = 1000
)

// Reasons of orderwatch_ratelimit_windows_skipped_total.
const (
	rateSkipCap         = "cap"         // another member's window, MaxWindows reached
	rateSkipInvalid     = "invalid"     // an entry of the bucket that is no window
	rateSkipUnpublished = "unpublished" // a change of this member's, MaxWindows waiting
)

// OpenRateShare validates opts, reads every member's windows from the bucket
// (this member's into Badger, merged with what it holds; the others' into
// memory) and returns the RateShare. Run keeps it up to date.
func OpenRateShare(ctx context.Context, opts RateShareOptions) (*RateShare, error) {
	if opts.Bucket == nil || opts.Store == nil {
		return nil, errors.New("actions: RateShareOptions.Bucket and .Store are required")
	}
	if !validMember(opts.Member) {
		return nil, fmt.Errorf("actions: RateShareOptions.Member %q: want 1 to 64 of [A-Za-z0-9_-], the member's id in its group", opts.Member)
	}
	r := newRateShare(opts)
	if r.opts.Registerer != nil {
		for _, c := range []prometheus.Collector{r.peerWindows, r.skipped, r.publishErrs} {
			if err := r.opts.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("actions: register rate share metrics: %w", err)
			}
		}
	}
	if err := r.load(ctx); err != nil {
		return nil, err
	}
	return r, nil
}

// newRateShare applies the defaults of opts and builds an empty RateShare.
func newRateShare(opts RateShareOptions) *RateShare {
	if opts.Interval <= 0 {
		opts.Interval = 250 * time.Millisecond
	}
	if opts.MaxWindows <= 0 {
		opts.MaxWindows = 100000
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	r := &RateShare{
		opts:    opts,
		log:     opts.Logger.With("component", "rateshare"),
		prefix:  "rate." + opts.Member + ".",
		peers:   map[rateKey][]peerWindow{},
		byKey:   map[string]rateKey{},
		dirty:   map[rateKey]dirtyMark{},
		own:     map[string]ownWindow{},
		expired: map[string]uint64{},
		peerWindows: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "orderwatch_ratelimit_peer_windows",
			Help: "Rate-limit windows of the other members of the group held in memory and counted with this member's.",
		}),
		skipped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "orderwatch_ratelimit_windows_skipped_total",
			Help: "Rate-limit windows not shared, by reason: cap (another member's, the memory bound was reached), invalid (a bucket entry that is no window), unpublished (a change of this member's, too many waiting); each makes the group's limit count less.",
		}, []string{"reason"}),
		publishErrs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "orderwatch_ratelimit_publish_errors_total",
			Help: "Failed writes of this member's rate-limit windows to the group's state bucket; each is tried again.",
		}),
	}
	for _, reason := range []string{rateSkipCap, rateSkipInvalid, rateSkipUnpublished} {
		r.skipped.WithLabelValues(reason)
	}
	return r
}

// validMember reports whether s may be a member id in a bucket key.
func validMember(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// load reads the bucket's windows once.
func (r *RateShare) load(ctx context.Context) error {
	w, err := r.opts.Bucket.Watch(ctx, rateKeys)
	if err != nil {
		return fmt.Errorf("actions: read the group's rate-limit windows (is JetStream reachable?): %w", err)
	}
	defer w.Stop()
	var own []jetstream.KeyValueEntry
	for done := false; !done; {
		select {
		case <-ctx.Done():
			return fmt.Errorf("actions: read the group's rate-limit windows: %w", ctx.Err())
		case e, ok := <-w.Updates():
			switch {
			case !ok:
				return errors.New("actions: read the group's rate-limit windows: the watch stopped; try again")
			case e == nil:
				done = true
			case strings.HasPrefix(e.Key(), r.prefix):
				own = append(own, e)
			default:
				r.apply(e)
			}
		}
	}
	return r.readBack(own)
}

// readBack merges this member's windows found in the bucket into Badger: a
// member that starts on a fresh data dir counts what it decided in the past hour.
// A window Badger holds more of is marked to be published again.
func (r *RateShare) readBack(entries []jetstream.KeyValueEntry) error {
	from := r.opts.Clock().Add(-rateWindow).UnixNano()
	b := r.opts.Store.NewBatch()
	defer b.Discard()
	merged := 0
	for _, e := range entries {
		if e.Operation() != jetstream.KeyValuePut {
			continue
		}
		v, ok := r.decode(e)
		if !ok {
			continue
		}
		r.own[e.Key()] = ownWindow{rev: e.Revision(), newest: newest(v.Times)}
		local, err := b.RateWindow(v.Action, v.Scope, v.Value)
		if err != nil {
			return fmt.Errorf("actions: read back rate window %s: %w", e.Key(), err)
		}
		union := mergeTimes(local, v.Times, from)
		if !slices.Equal(union, local) {
			if err := b.PutRateWindow(v.Action, v.Scope, v.Value, union, 2*rateWindow); err != nil {
				return fmt.Errorf("actions: read back rate window %s: %w", e.Key(), err)
			}
			merged++
		}
		if len(union) > 0 && !slices.Equal(union, v.Times) {
			r.dirty[rateKey{v.Action, v.Scope, v.Value}] = dirtyMark{at: union[len(union)-1]}
		}
	}
	if merged > 0 {
		if err := b.Commit(); err != nil {
			return fmt.Errorf("actions: read back this member's rate windows: %w", err)
		}
	}
	if len(entries) > 0 {
		r.log.Info("rate windows read back from the group's bucket", "windows", len(entries), "merged", merged)
	}
	return nil
}

// mergeTimes returns the times of a and b after from, ascending, each once.
func mergeTimes(a, b []int64, from int64) []int64 {
	out := make([]int64, 0, len(a)+len(b))
	for _, t := range a {
		if t > from {
			out = append(out, t)
		}
	}
	for _, t := range b {
		if t > from {
			out = append(out, t)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func newest(times []int64) int64 {
	if len(times) == 0 {
		return 0
	}
	return slices.Max(times)
}

// decode checks that e is a window, stored under the key it belongs to.
func (r *RateShare) decode(e jetstream.KeyValueEntry) (rateEntry, bool) {
	var v rateEntry
	parts := strings.Split(e.Key(), ".")
	if len(parts) != 4 || json.Unmarshal(e.Value(), &v) != nil || v.Action != parts[2] ||
		(v.Scope != ScopeWarehouse && v.Scope != ScopeCustomer && v.Scope != ScopeCarrier) ||
		rateBucketKey(parts[1], v.Action, v.Scope, v.Value) != e.Key() {
		r.skipped.WithLabelValues(rateSkipInvalid).Inc()
		if !r.invalidSeen { // then only counted
			r.invalidSeen = true
			r.log.Warn("entry of the group's bucket is no rate window: ignored, and counted in orderwatch_ratelimit_windows_skipped_total", "key", e.Key())
		}
		return v, false
	}
	return v, true
}

// rateBucketKey is where a member's window is in the bucket: the scope and value
// hashed, since a value may be long or hold any character.
func rateBucketKey(member, action, scope, value string) string {
	h := sha256.Sum256([]byte(scope + "\x00" + value))
	return "rate." + member + "." + action + "." + base64.RawURLEncoding.EncodeToString(h[:16])
}

// apply takes another member's window, or its deletion, from the bucket.
func (r *RateShare) apply(e jetstream.KeyValueEntry) {
	if strings.HasPrefix(e.Key(), r.prefix) {
		return // this member's own: Badger holds them
	}
	var v rateEntry
	keep := false
	if e.Operation() == jetstream.KeyValuePut {
		var ok bool
		if v, ok = r.decode(e); !ok {
			return
		}
		from := r.opts.Clock().Add(-rateWindow).UnixNano()
		v.Times = slices.DeleteFunc(v.Times, func(t int64) bool { return t <= from })
		keep = len(v.Times) > 0
		if !keep && len(r.expired) < rateSweepMax {
			r.expired[e.Key()] = e.Revision()
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if k, ok := r.byKey[e.Key()]; ok {
		r.remove(k, e.Key())
	}
	if !keep {
		return
	}
	if r.held >= r.opts.MaxWindows {
		r.skipped.WithLabelValues(rateSkipCap).Inc()
		return
	}
	k := rateKey{v.Action, v.Scope, v.Value}
	r.peers[k] = append(r.peers[k], peerWindow{key: e.Key(), rev: e.Revision(), times: v.Times})
	r.byKey[e.Key()] = k
	r.held++
	r.peerWindows.Set(float64(r.held))
}

// remove forgets the window at key; the caller holds mu.
func (r *RateShare) remove(k rateKey, key string) {
	ws := slices.DeleteFunc(r.peers[k], func(w peerWindow) bool { return w.key == key })
	if len(ws) == 0 {
		delete(r.peers, k)
	} else {
		r.peers[k] = ws
	}
	delete(r.byKey, key)
	r.held--
	r.peerWindows.Set(float64(r.held))
}

// count is how many times the other members' windows of action, scope and value
// hold after from. It does not allocate.
func (r *RateShare) count(action, scope, value string, from int64) int {
	if r == nil {
		return 0
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	n := 0
	for _, w := range r.peers[rateKey{action, scope, value}] {
		for _, t := range w.times {
			if t > from {
				n++
			}
		}
	}
	return n
}

// changed tells that this member's window of action, scope and value takes at,
// once the batch that wrote it commits.
func (r *RateShare) changed(action, scope, value string, at int64) {
	if r == nil {
		return
	}
	k := rateKey{action, scope, value}
	r.dirtyMu.Lock()
	defer r.dirtyMu.Unlock()
	if _, ok := r.dirty[k]; !ok && len(r.dirty) >= r.opts.MaxWindows {
		r.skipped.WithLabelValues(rateSkipUnpublished).Inc()
		return
	}
	r.dirty[k] = dirtyMark{at: at}
}

// Run publishes the windows that changed, every Interval, and takes the other
// members' changes from the bucket, until ctx is done; then it publishes what
// is left (the caller stops the pipeline first). It returns nil.
func (r *RateShare) Run(ctx context.Context) error {
	tick := time.NewTicker(r.opts.Interval)
	defer tick.Stop()
	sweep := time.NewTicker(rateSweepEvery)
	defer sweep.Stop()
	var (
		w            jetstream.KeyWatcher
		updates      <-chan jetstream.KeyValueEntry
		watchFailing bool
	)
	defer func() {
		if w != nil {
			_ = w.Stop()
		}
	}()
	watch := func() {
		var err error
		if w, err = r.opts.Bucket.Watch(ctx, rateKeys); err != nil {
			w = nil
			if !watchFailing && ctx.Err() == nil {
				r.log.Warn("watch the group's rate windows failed, will retry", "err", err)
			}
			watchFailing = true
			return
		}
		watchFailing = false
		updates = w.Updates()
	}
	watch()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.Background(), rateFlushTimeout)
			r.publish(fctx, true)
			cancel()
			return nil
		case e, ok := <-updates:
			if !ok {
				_ = w.Stop()
				w, updates = nil, nil // watched again at the next tick
				continue
			}
			if e != nil {
				r.apply(e)
			}
		case <-tick.C:
			if w == nil {
				watch()
			}
			r.publish(ctx, false)
		case <-sweep.C:
			r.sweep(ctx)
		}
	}
}

// publish writes to the bucket each changed window as Badger holds it, once the
// change is committed (or, final, at once): times of a batch that was discarded
// are never published.
func (r *RateShare) publish(ctx context.Context, final bool) {
	r.dirtyMu.Lock()
	if len(r.dirty) == 0 {
		r.dirtyMu.Unlock()
		return
	}
	marks := r.dirty
	r.dirty = make(map[rateKey]dirtyMark, len(marks))
	r.dirtyMu.Unlock()

	b := r.opts.Store.NewBatch()
	defer b.Discard()
	var again map[rateKey]dirtyMark
	retry := func(k rateKey, m dirtyMark) {
		if again == nil {
			again = map[rateKey]dirtyMark{}
		}
		again[k] = m
	}
	var firstErr error
	bucketDown := false
	for k, m := range marks {
		if bucketDown {
			retry(k, m) // at the next try
			continue
		}
		times, err := b.RateWindow(k.action, k.scope, k.value)
		if err != nil {
			firstErr = cmp.Or(firstErr, err)
			retry(k, m)
			continue
		}
		if !final && !slices.Contains(times, m.at) && m.ticks < rateGiveUp {
			m.ticks++ // its batch is not committed yet
			retry(k, m)
			continue
		}
		if len(times) == 0 {
			continue
		}
		key := rateBucketKey(r.opts.Member, k.action, k.scope, k.value)
		val, _ := json.Marshal(rateEntry{Action: k.action, Scope: k.scope, Value: k.value, Times: times})
		rev, err := r.opts.Bucket.Put(ctx, key, val)
		if err != nil {
			r.publishErrs.Inc()
			firstErr, bucketDown = cmp.Or(firstErr, fmt.Errorf("put %s: %w", key, err)), true
			m.ticks = rateGiveUp // committed: publish at the next try
			retry(k, m)
			continue
		}
		r.own[key] = ownWindow{rev: rev, newest: newest(times)}
	}
	switch {
	case firstErr != nil && !r.failing:
		r.log.Warn("publish rate windows to the group's bucket failed, will retry", "waiting", len(again), "err", firstErr)
	case firstErr == nil && r.failing:
		r.log.Info("publish rate windows to the group's bucket works again")
	}
	r.failing = firstErr != nil
	if len(again) == 0 {
		return
	}
	r.dirtyMu.Lock()
	defer r.dirtyMu.Unlock()
	for k, m := range again {
		if _, newer := r.dirty[k]; !newer {
			r.dirty[k] = m
		}
	}
}

// sweep forgets the windows whose times all left the hour and deletes them from
// the bucket, unless they changed meanwhile: a member's windows that nobody
// updates (it stopped) go once they count no more.
func (r *RateShare) sweep(ctx context.Context) {
	from := r.opts.Clock().Add(-rateWindow).UnixNano()
	type gone struct {
		key string
		rev uint64
	}
	var stale []gone
	for key, rev := range r.expired {
		stale = append(stale, gone{key, rev})
		delete(r.expired, key)
	}
	for key, o := range r.own {
		if o.newest <= from && len(stale) < rateSweepMax {
			stale = append(stale, gone{key, o.rev})
			delete(r.own, key)
		}
	}
	r.mu.Lock()
	for key, k := range r.byKey {
		if len(stale) >= rateSweepMax {
			break
		}
		for _, w := range r.peers[k] {
			if w.key == key && newest(w.times) <= from {
				stale = append(stale, gone{key, w.rev})
				r.remove(k, key)
				break
			}
		}
	}
	r.mu.Unlock()
	deleted := 0
	for _, g := range stale {
		// Another member's sweep, or a new write, got there first: nothing to do.
		if err := r.opts.Bucket.Delete(ctx, g.key, jetstream.LastRevision(g.rev)); err == nil {
			deleted++
		}
	}
	if len(stale) > 0 {
		r.log.Debug("rate windows out of the hour swept", "windows", len(stale), "deleted", deleted)
	}
}
