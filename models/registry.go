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
	RejectMemory    = "memory"
	// RejectBadOutputs is a serving version taken out of service: too many of
	// the rows it scored came out unusable (BadOutputPolicy).
	RejectBadOutputs = "bad_outputs"
	// RejectSweepNonFinite and RejectSweepOutOfRange are a version whose
	// output, for an extreme but valid input of the sweep, is NaN or infinite,
	// or finite but not a probability (ErrSweepNonFinite, ErrSweepOutOfRange).
	RejectSweepNonFinite  = "sweep_non_finite"
	RejectSweepOutOfRange = "sweep_out_of_range"
	RejectOther           = "other"
)

// rejectReasons are the values of the reason label, each series started at 0.
var rejectReasons = [...]string{RejectInvalid, RejectChecksum, RejectSpec, RejectModel, RejectTokenizer, RejectGolden, RejectLatency, RejectMemory, RejectBadOutputs, RejectSweepNonFinite, RejectSweepOutOfRange, RejectOther}

// RejectReason classifies an Open error into a rejection reason.
func RejectReason(err error) string {
	for _, c := range []struct {
		err    error
		reason string
	}{
		{ErrChecksum, RejectChecksum}, {ErrSpecMismatch, RejectSpec}, {ErrTokenizer, RejectTokenizer},
		{ErrGolden, RejectGolden}, {ErrLatency, RejectLatency}, {ErrMemory, RejectMemory},
		{ErrBadOutputs, RejectBadOutputs}, {ErrSweepNonFinite, RejectSweepNonFinite},
		{ErrSweepOutOfRange, RejectSweepOutOfRange}, {ErrModelMismatch, RejectModel},
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
	Interval time.Duration
	// BadOutputs says when a serving version is taken out of service for
	// unusable outputs; the zero value means DefaultBadOutputs.
	BadOutputs BadOutputPolicy
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
	kick  chan struct{}    // asks Run for a scan now (a version was taken out)

	// scanMu serialises scans and Activate: the slow part (loading and
	// validating a version) runs under it alone, so Status, Acquire and Report
	// never wait for a validation.
	scanMu sync.Mutex
	// mu guards the slots' tried, pinned and checking, and swaps; held briefly.
	mu sync.Mutex

	rejections *prometheus.CounterVec
	swaps      *prometheus.CounterVec
	info       *prometheus.GaugeVec
	badOutputs *prometheus.CounterVec
}

// slot holds one model name's served versions.
type slot struct {
	active atomic.Pointer[served]
	shadow atomic.Pointer[served]

	// Guarded by Registry.mu.
	tried    map[string]attempt // version → the last attempt to open it
	pinned   string
	checking string // the version being validated, for Status
}

type attempt struct {
	fingerprint string
	err         error
	role        string
	at          time.Time
}

// served is an open model with the lock that keeps it open while batches use it.
type served struct {
	m           *Model
	fingerprint string       // of its files when it was opened
	mu          sync.RWMutex // held shared by users, exclusively to retire
	closed      bool
	health      outputHealth
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
	if opts.BadOutputs == (BadOutputPolicy{}) {
		opts.BadOutputs = DefaultBadOutputs
	}
	if opts.BadOutputs.Limit < 1 || opts.BadOutputs.Window < opts.BadOutputs.Limit {
		return nil, fmt.Errorf("models: RegistryOptions.BadOutputs %+v: want 1 <= Limit <= Window", opts.BadOutputs)
	}
	r := &Registry{
		opts:  opts,
		log:   opts.Logger.With("component", "models"),
		slots: map[string]*slot{},
		kick:  make(chan struct{}, 1),
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
		badOutputs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "orderwatch_model_bad_outputs_total",
			Help: "Rows whose model output was unusable (not finite, not a probability) and was not used, by model, version and role; an active risk model's rows fell back to the rules.",
		}, []string{"model", "version", "role"}),
	}
	for _, n := range opts.Names {
		r.slots[n] = &slot{tried: map[string]attempt{}}
		for _, reason := range rejectReasons {
			r.rejections.WithLabelValues(n, reason)
		}
	}
	if opts.Registerer != nil {
		for _, c := range []prometheus.Collector{r.rejections, r.swaps, r.info, r.badOutputs} {
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
		case <-r.kick:
			r.Scan()
		}
	}
}

// Close retires every served model; Acquire returns none afterwards.
func (r *Registry) Close() error {
	r.scanMu.Lock()
	defer r.scanMu.Unlock()
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
// change. Versions are loaded and validated without holding the lock that
// Status and Report take; only the swap is made under it.
func (r *Registry) Scan() {
	r.scanMu.Lock()
	defer r.scanMu.Unlock()
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
	pinned := r.readPin(name)
	r.mu.Lock()
	s.pinned = pinned
	r.mu.Unlock()
	for _, role := range []string{RoleActive, RoleShadow} {
		for i := len(versions) - 1; i >= 0; i-- {
			v := versions[i]
			if role == RoleActive && pinned != "" && v != pinned {
				continue
			}
			if r.tryServe(name, v, role, s) {
				break
			}
		}
	}
	r.mu.Lock()
	s.forgetRemoved(versions)
	r.mu.Unlock()
}

// forgetRemoved drops the attempts of versions whose directory is gone, so
// that Status stops listing them; a version still serving (it has nothing to
// replace it yet) stays listed. The caller holds mu.
func (s *slot) forgetRemoved(versions []string) {
	for v := range s.tried {
		if slices.Contains(versions, v) || s.serves(v) {
			continue
		}
		delete(s.tried, v)
	}
}

// serves reports whether version v serves in the slot, in any role.
func (s *slot) serves(v string) bool {
	if a := s.active.Load(); a != nil && a.m.Version() == v {
		return true
	}
	if sh := s.shadow.Load(); sh != nil && sh.m.Version() == v {
		return true
	}
	return false
}

// readPin returns the version pinned for name, or "". A PIN file that does not
// hold a semantic version is ignored, with a warning.
func (r *Registry) readPin(name string) string {
	raw, err := readBundleFile(filepath.Join(r.opts.Dir, name), PinFile, 256)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			r.log.Warn("pin file ignored", "model", name, "err", err)
		}
		return ""
	}
	pin := strings.TrimSpace(string(raw))
	if _, ok := parseVersion(pin); !ok {
		r.log.Warn("pin file ignored: not a semantic version", "model", name, "pinned", pin)
		return ""
	}
	return pin
}

func (s *slot) ptr(role string) *atomic.Pointer[served] {
	if role == RoleShadow {
		return &s.shadow
	}
	return &s.active
}

// tryServe keeps or puts version v in service in the slot's role when it has
// the role and is valid; it reports whether v serves. The caller holds scanMu.
func (r *Registry) tryServe(name, v, role string, s *slot) bool {
	dir := filepath.Join(r.opts.Dir, name, v)
	fp := fingerprint(dir)
	cur := s.ptr(role)
	r.mu.Lock()
	old := cur.Load()
	a, tried := s.tried[v]
	r.mu.Unlock()
	if old != nil && old.m.Version() == v && old.fingerprint == fp {
		return true
	}
	if tried && a.fingerprint == fp && (a.err != nil || a.role != role) {
		return false
	}
	b, err := LoadBundle(dir)
	if err == nil && b.Role != role {
		r.mu.Lock()
		s.tried[v] = attempt{fingerprint: fp, role: b.Role, at: time.Now()}
		r.mu.Unlock()
		return false
	}
	var m *Model
	if err == nil {
		m, err = r.open(s, dir, v)
	}
	if err != nil {
		r.reject(name, v, role, fp, err)
		return false
	}
	r.install(name, role, s, &served{m: m, fingerprint: fp})
	return true
}

// open validates and opens the bundle in dir, showing it as being checked in
// Status meanwhile. It does not hold mu while it works.
func (r *Registry) open(s *slot, dir, v string) (*Model, error) {
	r.mu.Lock()
	s.checking = v
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		s.checking = ""
		r.mu.Unlock()
	}()
	return OpenWith(dir, r.opts.Open)
}

// reject records that version v could not serve in role.
func (r *Registry) reject(name, v, role, fp string, err error) {
	reason := RejectReason(err)
	r.mu.Lock()
	r.slots[name].tried[v] = attempt{fingerprint: fp, err: err, role: role, at: time.Now()}
	r.mu.Unlock()
	r.rejections.WithLabelValues(name, reason).Inc()
	r.log.Error("model version rejected, the previous version keeps serving", "model", name, "version", v, "reason", reason, "err", err)
}

// install puts sv in service in role, retiring the version it replaces once the
// batches using it are done.
func (r *Registry) install(name, role string, s *slot, sv *served) {
	m := sv.m
	r.mu.Lock()
	s.tried[m.Version()] = attempt{fingerprint: sv.fingerprint, role: role, at: time.Now()}
	old := s.ptr(role).Swap(sv)
	r.mu.Unlock()
	if old != nil {
		r.info.DeleteLabelValues(name, old.m.Version(), role, old.m.SHA256())
		// Batches that acquired the old version finish on it; it closes after.
		go retire(old)
	}
	r.info.WithLabelValues(name, m.Version(), role, m.SHA256()).Set(1)
	r.badOutputs.WithLabelValues(name, m.Version(), role)
	r.swaps.WithLabelValues(name, role).Inc()
	r.log.Info("model serving", "model", name, "version", m.Version(), "role", role, "sha256", m.SHA256())
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
	r    *Registry
	held []*served
	by   map[string]*Model
}

// Acquire returns the models serving now. Call Release when the batch is done.
func (r *Registry) Acquire() *Set {
	set := &Set{r: r, by: make(map[string]*Model, 2*len(r.slots))}
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
// empty; the change is applied before Activate returns. The version must be a
// semantic version (ErrInvalidVersion, checked before any path is built), exist
// and validate; only then is the PIN file replaced, atomically. A failed
// activation leaves the PIN file and the serving version as they were.
func (r *Registry) Activate(name, version string) error {
	s, ok := r.slots[name]
	if !ok {
		return fmt.Errorf("models: %q is not a served model (served: %v)", name, r.opts.Names)
	}
	r.scanMu.Lock()
	defer r.scanMu.Unlock()
	pin := filepath.Join(r.opts.Dir, name, PinFile)
	if version == "" {
		if err := os.Remove(pin); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("models: unpin %s: %w", name, err)
		}
		r.scanModel(name, s)
		return nil
	}
	if _, ok := parseVersion(version); !ok {
		return fmt.Errorf("models: activate %s: %w: %q: want a semantic version such as 1.2.0", name, ErrInvalidVersion, version)
	}
	dir := filepath.Join(r.opts.Dir, name, version)
	if fi, err := os.Lstat(dir); err != nil || !fi.IsDir() {
		if err == nil {
			err = errors.New("not a directory (a symlink is not followed)")
		}
		return fmt.Errorf("models: activate %s %s: %w: %w", name, version, ErrInvalidBundle, err)
	}
	fp := fingerprint(dir)
	var sv *served
	if cur := s.active.Load(); cur != nil && cur.m.Version() == version && cur.fingerprint == fp {
		sv = cur // serving already: pin it
	} else {
		b, err := LoadBundle(dir)
		if err == nil && b.Role != RoleActive {
			err = fmt.Errorf("%w: role %q: only an active bundle can be pinned", ErrInvalidBundle, b.Role)
		}
		var m *Model
		if err == nil {
			m, err = r.open(s, dir, version)
		}
		if err != nil {
			return fmt.Errorf("models: activate %s %s: %w", name, version, err)
		}
		sv = &served{m: m, fingerprint: fp}
	}
	if err := writeFileAtomic(pin, []byte(version+"\n")); err != nil {
		if sv != s.active.Load() {
			sv.m.Close()
		}
		return fmt.Errorf("models: pin %s to %s: %w", name, version, err)
	}
	r.mu.Lock()
	s.pinned = version
	r.mu.Unlock()
	if sv != s.active.Load() {
		r.install(name, RoleActive, s, sv)
	}
	return nil
}

// writeFileAtomic replaces name with data: a temporary file beside it, synced,
// renamed over it, and the directory synced, so a crash leaves the old or the
// new content, never a part.
func writeFileAtomic(name string, data []byte) error {
	dir := filepath.Dir(name)
	f, err := os.CreateTemp(dir, "."+filepath.Base(name)+"-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // a no-op after the rename
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, name); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Validate opens the bundle in dir as a swap would and closes it again.
func (r *Registry) Validate(dir string) error {
	m, err := OpenWith(dir, r.opts.Open)
	if err != nil {
		return err
	}
	return m.Close()
}

// CheckBundle checks the bundle in dir as a swap would (Check, with the
// registry's OpenOptions) and reports whether it would serve; report is a
// *Report, the answer of POST /api/v1/models/validate.
func (r *Registry) CheckBundle(dir string) (report any, valid bool) {
	rep := Check(dir, r.opts.Open)
	return rep, rep.Valid
}

// VersionStatus describes one version directory of a model.
type VersionStatus struct {
	Version string    `json:"version"`
	Role    string    `json:"role,omitempty"`
	State   string    `json:"state"` // serving, shadow, standby, rejected, validating
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
		versions := make([]string, 0, len(s.tried)+1)
		for v := range s.tried {
			versions = append(versions, v)
		}
		if _, ok := s.tried[s.checking]; s.checking != "" && !ok {
			versions = append(versions, s.checking)
		}
		slices.SortFunc(versions, func(a, b string) int {
			va, _ := parseVersion(a)
			vb, _ := parseVersion(b)
			return va.compare(vb)
		})
		for _, v := range versions {
			a, ok := s.tried[v]
			if !ok || v == s.checking {
				st.Versions = append(st.Versions, VersionStatus{Version: v, State: "validating", At: time.Now()})
				continue
			}
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
