package models

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// PinFile, in <models-dir>/<name>/, holds the version pinned by Activate; without
// it the live version is the greatest valid one.
const PinFile = "PINNED"

// Rejection reasons, the reason label of orderwatch_model_rejections_total.
const (
	RejectInvalid   = "invalid_bundle"
	RejectChecksum  = "checksum"
	RejectSpec      = "spec_mismatch"
	RejectModel     = "model_mismatch"
	RejectTokenizer = "tokenizer"
	RejectGolden    = "golden"
	RejectLatency   = "latency"
	RejectOther     = "other"
)

// RejectReason classifies an Open error into a rejection reason.
func RejectReason(err error) string {
	for _, c := range []struct {
		err    error
		reason string
	}{
		{ErrChecksum, RejectChecksum}, {ErrSpecMismatch, RejectSpec}, {ErrTokenizer, RejectTokenizer},
		{ErrGolden, RejectGolden}, {ErrLatency, RejectLatency}, {ErrModelMismatch, RejectModel},
		{ErrInvalidBundle, RejectInvalid},
	} {
		if errors.Is(err, c.err) {
			return c.reason
		}
	}
	return RejectOther
}

// RegistryOptions configures a Registry.
type RegistryOptions struct {
	Dir   string      // the models dir; required
	Names []string    // the models to serve; required
	Open  OpenOptions // the running spec and tokenizer loader
	// Interval between scans of Dir; zero means one second.
	Interval   time.Duration
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// Registry serves the live (and shadow) version of each model from a models dir
// and swaps in new versions dropped into it, after validation. Acquire and the
// status methods are safe for concurrent use with Run.
type Registry struct {
	opts RegistryOptions
	log  *slog.Logger

	slots map[string]*slot // fixed at construction

	// mu serialises scans and Activate.
	mu sync.Mutex

	rejections *prometheus.CounterVec
	swaps      *prometheus.CounterVec
	info       *prometheus.GaugeVec
}

// slot holds one model name's served versions.
type slot struct {
	active atomic.Pointer[served]
	shadow atomic.Pointer[served]

	// Guarded by Registry.mu.
	tried  map[string]attempt // version → the last attempt to open it
	pinned string
}

type attempt struct {
	fingerprint string
	err         error
	role        string
	at          time.Time
}

// served is an open model with the lock that keeps it open while batches use it.
type served struct {
	m      *Model
	mu     sync.RWMutex // held shared by users, exclusively to retire
	closed bool
}

// NewRegistry scans the models dir once and serves what is valid. A model with no
// valid version is not an error: Acquire then returns no model for it.
func NewRegistry(opts RegistryOptions) (*Registry, error) {
	if opts.Dir == "" || len(opts.Names) == 0 {
		return nil, errors.New("models: RegistryOptions.Dir and .Names are required")
	}
	if opts.Interval <= 0 {
		opts.Interval = time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	r := &Registry{
		opts:  opts,
		log:   opts.Logger.With("component", "models"),
		slots: map[string]*slot{},
		rejections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "orderwatch_model_rejections_total",
			Help: "Model versions rejected at validation, by model and reason; the previous version keeps serving.",
		}, []string{"model", "reason"}),
		swaps: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "orderwatch_model_swaps_total",
			Help: "Model versions put into service, by model and role.",
		}, []string{"model", "role"}),
		info: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "orderwatch_model_info",
			Help: "The model versions serving (value 1), by name, version, role and sha256 of model.onnx.",
		}, []string{"name", "version", "role", "sha256"}),
	}
	for _, n := range opts.Names {
		r.slots[n] = &slot{tried: map[string]attempt{}}
		for _, reason := range []string{RejectInvalid, RejectChecksum, RejectSpec, RejectModel, RejectTokenizer, RejectGolden, RejectLatency, RejectOther} {
			r.rejections.WithLabelValues(n, reason)
		}
	}
	if opts.Registerer != nil {
		for _, c := range []prometheus.Collector{r.rejections, r.swaps, r.info} {
			if err := opts.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("models: register metrics: %w", err)
			}
		}
	}
	r.Scan()
	return r, nil
}

// Run rescans the models dir every Interval until ctx is done, then closes every
// served model.
func (r *Registry) Run(ctx context.Context) error {
	t := time.NewTicker(r.opts.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			r.Scan()
		}
	}
}

// Close retires every served model; Acquire returns none afterwards.
func (r *Registry) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range r.slots {
		retire(s.active.Swap(nil))
		retire(s.shadow.Swap(nil))
	}
	return nil
}

// Scan looks at the models dir once: for each model it serves the pinned version,
// or else the greatest version that opens and validates, and likewise the greatest
// valid shadow version. Versions that failed are not retried until their files
// change.
func (r *Registry) Scan() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, name := range r.opts.Names {
		r.scanModel(name, r.slots[name])
	}
}

func (r *Registry) scanModel(name string, s *slot) {
	versions, err := Versions(r.opts.Dir, name)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		r.log.Warn("cannot list model versions", "model", name, "err", err)
		return
	}
	pin, _ := os.ReadFile(filepath.Join(r.opts.Dir, name, PinFile))
	s.pinned = strings.TrimSpace(string(pin))
	for _, role := range []string{RoleActive, RoleShadow} {
		cur := &s.active
		if role == RoleShadow {
			cur = &s.shadow
		}
		for i := len(versions) - 1; i >= 0; i-- {
			v := versions[i]
			if role == RoleActive && s.pinned != "" && v != s.pinned {
				continue
			}
			if r.tryServe(name, v, role, s, cur) {
				break
			}
		}
	}
}

// tryServe keeps or puts version v in service in cur when it has the role and is
// valid; it reports whether v serves.
func (r *Registry) tryServe(name, v, role string, s *slot, cur *atomic.Pointer[served]) bool {
	dir := filepath.Join(r.opts.Dir, name, v)
	fp := fingerprint(dir)
	old := cur.Load()
	if old != nil && old.m.Version() == v && s.tried[v].fingerprint == fp {
		return true
	}
	if a, ok := s.tried[v]; ok && a.fingerprint == fp && (a.err != nil || a.role != role) {
		return false
	}
	b, err := LoadBundle(dir)
	if err == nil && b.Role != role {
		s.tried[v] = attempt{fingerprint: fp, role: b.Role, at: time.Now()}
		return false
	}
	var m *Model
	if err == nil {
		m, err = OpenWith(dir, r.opts.Open)
	}
	if err != nil {
		reason := RejectReason(err)
		s.tried[v] = attempt{fingerprint: fp, err: err, role: role, at: time.Now()}
		r.rejections.WithLabelValues(name, reason).Inc()
		r.log.Error("model version rejected, the previous version keeps serving", "model", name, "version", v, "reason", reason, "err", err)
		return false
	}
	s.tried[v] = attempt{fingerprint: fp, role: role, at: time.Now()}
	cur.Store(&served{m: m})
	if old != nil {
		r.info.DeleteLabelValues(name, old.m.Version(), role, old.m.SHA256())
		// Batches that acquired the old version finish on it; it closes after.
		go retire(old)
	}
	r.info.WithLabelValues(name, m.Version(), role, m.SHA256()).Set(1)
	r.swaps.WithLabelValues(name, role).Inc()
	r.log.Info("model serving", "model", name, "version", v, "role", role, "sha256", m.SHA256())
	return true
}

// fingerprint changes when a bundle's files change: their sizes and times.
func fingerprint(dir string) string {
	var b strings.Builder
	for _, f := range []string{BundleFile, ModelFile, "tokenizer.json"} {
		if fi, err := os.Stat(filepath.Join(dir, f)); err == nil {
			fmt.Fprintf(&b, "%s:%d:%d;", f, fi.Size(), fi.ModTime().UnixNano())
		}
	}
	return b.String()
}

func retire(s *served) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	s.m.Close()
}

// Set is the models a batch scores with: acquired together, kept open until
// Release, even when newer versions go live meanwhile.
type Set struct {
	held []*served
	by   map[string]*Model
}

// Acquire returns the models serving now. Call Release when the batch is done.
func (r *Registry) Acquire() *Set {
	set := &Set{by: make(map[string]*Model, 2*len(r.slots))}
	for name, s := range r.slots {
		for _, p := range []struct {
			ptr *atomic.Pointer[served]
			key string
		}{{&s.active, name}, {&s.shadow, name + "@shadow"}} {
			for {
				sv := p.ptr.Load()
				if sv == nil {
					break
				}
				sv.mu.RLock()
				if sv.closed { // retired between Load and RLock: take the new one
					sv.mu.RUnlock()
					continue
				}
				set.held = append(set.held, sv)
				set.by[p.key] = sv.m
				break
			}
		}
	}
	return set
}

// Model returns the live version of name, or nil.
func (s *Set) Model(name string) *Model { return s.by[name] }

// Shadow returns the shadow version of name, or nil.
func (s *Set) Shadow(name string) *Model { return s.by[name+"@shadow"] }

// Release lets retired versions close. It is idempotent.
func (s *Set) Release() {
	for _, sv := range s.held {
		sv.mu.RUnlock()
	}
	s.held = nil
}

// Activate pins a model to a version (rollback), or unpins it when version is
// empty; the change is applied before Activate returns. The version must exist and
// validate.
func (r *Registry) Activate(name, version string) error {
	if _, ok := r.slots[name]; !ok {
		return fmt.Errorf("models: %q is not a served model (served: %v)", name, r.opts.Names)
	}
	pin := filepath.Join(r.opts.Dir, name, PinFile)
	if version == "" {
		if err := os.Remove(pin); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("models: unpin %s: %w", name, err)
		}
		r.Scan()
		return nil
	}
	if err := r.Validate(filepath.Join(r.opts.Dir, name, version)); err != nil {
		return fmt.Errorf("models: activate %s %s: %w", name, version, err)
	}
	if err := os.WriteFile(pin, []byte(version+"\n"), 0o644); err != nil {
		return fmt.Errorf("models: pin %s to %s: %w", name, version, err)
	}
	r.Scan()
	if sv := r.slots[name].active.Load(); sv == nil || sv.m.Version() != version {
		return fmt.Errorf("models: %s %s is pinned but did not go live: see GET /api/v1/models", name, version)
	}
	return nil
}

// Validate opens the bundle in dir as a swap would and closes it again.
func (r *Registry) Validate(dir string) error {
	m, err := OpenWith(dir, r.opts.Open)
	if err != nil {
		return err
	}
	return m.Close()
}

// VersionStatus describes one version directory of a model.
type VersionStatus struct {
	Version string    `json:"version"`
	Role    string    `json:"role,omitempty"`
	State   string    `json:"state"` // serving, shadow, standby, rejected
	Reason  string    `json:"reason,omitempty"`
	Error   string    `json:"error,omitempty"`
	At      time.Time `json:"checked_at,omitzero"`
}

// ModelStatus describes one served model.
type ModelStatus struct {
	Name     string          `json:"name"`
	Live     *ModelRef       `json:"live"`
	Shadow   *ModelRef       `json:"shadow,omitempty"`
	Pinned   string          `json:"pinned,omitempty"`
	Versions []VersionStatus `json:"versions"`
}

// ModelRef names a served version.
type ModelRef struct {
	Version   string         `json:"version"`
	SHA256    string         `json:"sha256"`
	Threshold float64        `json:"threshold"`
	Metrics   map[string]any `json:"metrics,omitempty"`
}

// Status describes every model for /api/v1/models.
func (r *Registry) Status() any {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]ModelStatus, 0, len(r.opts.Names))
	for _, name := range r.opts.Names {
		s := r.slots[name]
		st := ModelStatus{Name: name, Pinned: s.pinned, Versions: []VersionStatus{}}
		ref := func(sv *served) *ModelRef {
			if sv == nil {
				return nil
			}
			b := sv.m.Bundle()
			return &ModelRef{Version: b.Version, SHA256: b.SHA256, Threshold: sv.m.Threshold(), Metrics: b.Metrics}
		}
		live, shadow := s.active.Load(), s.shadow.Load()
		st.Live, st.Shadow = ref(live), ref(shadow)
		versions := make([]string, 0, len(s.tried))
		for v := range s.tried {
			versions = append(versions, v)
		}
		slices.SortFunc(versions, func(a, b string) int {
			va, _ := parseVersion(a)
			vb, _ := parseVersion(b)
			return va.compare(vb)
		})
		for _, v := range versions {
			a := s.tried[v]
			vs := VersionStatus{Version: v, Role: a.role, State: "standby", At: a.at}
			switch {
			case a.err != nil:
				vs.State, vs.Reason, vs.Error = "rejected", RejectReason(a.err), a.err.Error()
			case live != nil && live.m.Version() == v:
				vs.State = "serving"
			case shadow != nil && shadow.m.Version() == v:
				vs.State = "shadow"
			}
			st.Versions = append(st.Versions, vs)
		}
		out = append(out, st)
	}
	return out
}
