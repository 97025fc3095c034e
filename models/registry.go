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

// MaxShadows is how many shadow versions of one model serve at once: the
// greatest valid ones. A further shadow version is listed as standby, with a
// note that says why, until one of them leaves.
const MaxShadows = 3

// slot holds one model name's served versions.
type slot struct {
	active  atomic.Pointer[served]
	shadows atomic.Pointer[shadowList] // nil when none serves

	// Guarded by Registry.mu.
	tried    map[string]attempt // version → the last attempt to open it
	pinned   string
	checking string // the version being validated, for Status
}

type attempt struct {
	fingerprint string
	err         error
	role        string
	note        string // why a valid version does not serve (MaxShadows)
	at          time.Time
}

// shadowList is the shadow versions serving for one model, the greatest first;
// it is replaced whole, never changed, so that a batch shares it.
type shadowList struct {
	sv []*served
	ms []*Model // sv's models, in the same order
}

func newShadowList(sv []*served) *shadowList {
	if len(sv) == 0 {
		return nil
	}
	l := &shadowList{sv: sv, ms: make([]*Model, len(sv))}
	for i, x := range sv {
		l.ms[i] = x.m
	}
	return l
}

// find returns the served shadow of version v, or nil.
func (l *shadowList) find(v string) *served {
	if l == nil {
		return nil
	}
	for _, sv := range l.sv {
		if sv.m.Version() == v {
			return sv
		}
	}
	return nil
}

// without returns the list less sv, and whether sv was in it.
func (l *shadowList) without(sv *served) (*shadowList, bool) {
	if l == nil || !slices.Contains(l.sv, sv) {
		return l, false
	}
	rest := make([]*served, 0, len(l.sv)-1)
	for _, x := range l.sv {
		if x != sv {
			rest = append(rest, x)
		}
	}
	return newShadowList(rest), true
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
		if l := s.shadows.Swap(nil); l != nil {
			for _, sv := range l.sv {
				retire(sv)
			}
		}
	}
	return nil
}

// Scan looks at the models dir once: for each model it serves the pinned version,
// or else the greatest version that opens and validates, and likewise the
// greatest MaxShadows valid shadow versions. Versions that failed are not retried until their files
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
	for i := len(versions) - 1; i >= 0; i-- {
		v := versions[i]
		if pinned != "" && v != pinned {
			continue
		}
		if r.tryServe(name, v, s) {
			break
		}
	}
	cur := s.shadows.Load()
	next := make([]*served, 0, MaxShadows)
	for i := len(versions) - 1; i >= 0; i-- {
		v := versions[i]
		if len(next) == MaxShadows {
			r.overShadowLimit(name, v, s)
			continue
		}
		if sv := r.candidate(name, v, RoleShadow, s, cur.find(v)); sv != nil {
			next = append(next, sv)
		}
	}
	r.installShadows(name, s, cur, next)
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
	return s.shadows.Load().find(v) != nil
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

// tryServe keeps or puts version v in service as the slot's active version
// when it is an active bundle and valid; it reports whether v serves. The
// caller holds scanMu.
func (r *Registry) tryServe(name, v string, s *slot) bool {
	old := s.active.Load()
	if old != nil && old.m.Version() != v {
		old = nil
	}
	sv := r.candidate(name, v, RoleActive, s, old)
	if sv == nil {
		return false
	}
	if sv != old {
		r.install(name, s, sv)
	}
	return true
}

// candidate returns version v ready to serve in role: cur (v serving already)
// when its files did not change, else v opened and validated, or nil when v
// does not have the role or is not valid (recorded, not retried until its
// files change). The caller holds scanMu.
func (r *Registry) candidate(name, v, role string, s *slot, cur *served) *served {
	dir := filepath.Join(r.opts.Dir, name, v)
	fp := fingerprint(dir)
	if cur != nil && cur.fingerprint == fp {
		return cur
	}
	r.mu.Lock()
	a, tried := s.tried[v]
	r.mu.Unlock()
	if tried && a.fingerprint == fp && (a.err != nil || a.role != role) {
		return nil
	}
	b, err := LoadBundle(dir)
	if err == nil && b.Role != role {
		r.mu.Lock()
		s.tried[v] = attempt{fingerprint: fp, role: b.Role, at: time.Now()}
		r.mu.Unlock()
		return nil
	}
	var m *Model
	if err == nil {
		m, err = r.open(s, dir, v)
	}
	if err != nil {
		r.reject(name, v, role, fp, err)
		return nil
	}
	return &served{m: m, fingerprint: fp}
}

// overShadowLimit records why version v, when it is a shadow bundle, does
// not serve: MaxShadows greater shadow versions do. It is not validated until
// it has room. The caller holds scanMu.
func (r *Registry) overShadowLimit(name, v string, s *slot) {
	dir := filepath.Join(r.opts.Dir, name, v)
	fp := fingerprint(dir)
	r.mu.Lock()
	a, tried := s.tried[v]
	r.mu.Unlock()
	if tried && a.fingerprint == fp && (a.err != nil || a.role != RoleShadow || a.note != "") {
		return
	}
	b, err := LoadBundle(dir)
	if err != nil {
		r.reject(name, v, RoleShadow, fp, err)
		return
	}
	at := attempt{fingerprint: fp, role: b.Role, at: time.Now()}
	if b.Role == RoleShadow {
		at.note = fmt.Sprintf("not serving: the %d greater valid shadow versions serve (at most %d at once)", MaxShadows, MaxShadows)
	}
	r.mu.Lock()
	s.tried[v] = at
	r.mu.Unlock()
}

// installShadows serves next (the greatest first) as the model's shadows in
// place of cur, retiring those that leave once the batches using them are
// done. A version taken out of service meanwhile (Report) is left out.
func (r *Registry) installShadows(name string, s *slot, cur *shadowList, next []*served) {
	r.mu.Lock()
	kept := next[:0]
	for _, sv := range next {
		if a, ok := s.tried[sv.m.Version()]; ok && a.err != nil && a.fingerprint == sv.fingerprint {
			if cur.find(sv.m.Version()) != sv {
				go retire(sv) // opened by this scan, refused meanwhile
			}
			continue
		}
		kept = append(kept, sv)
	}
	next = kept
	now := s.shadows.Load()
	if now != nil && slices.Equal(now.sv, next) || now == nil && len(next) == 0 {
		r.mu.Unlock()
		return
	}
	for _, sv := range next {
		if now.find(sv.m.Version()) != sv {
			s.tried[sv.m.Version()] = attempt{fingerprint: sv.fingerprint, role: RoleShadow, at: time.Now()}
		}
	}
	s.shadows.Store(newShadowList(slices.Clone(next)))
	r.mu.Unlock()
	if now != nil {
		for _, old := range now.sv {
			if slices.Contains(next, old) {
				continue
			}
			r.info.DeleteLabelValues(name, old.m.Version(), RoleShadow, old.m.SHA256())
			r.log.Info("model shadow left service", "model", name, "version", old.m.Version())
			go retire(old)
		}
	}
	for _, sv := range next {
		if now.find(sv.m.Version()) == sv {
			continue
		}
		m := sv.m
		r.info.WithLabelValues(name, m.Version(), RoleShadow, m.SHA256()).Set(1)
		r.badOutputs.WithLabelValues(name, m.Version(), RoleShadow)
		r.swaps.WithLabelValues(name, RoleShadow).Inc()
		r.log.Info("model serving", "model", name, "version", m.Version(), "role", RoleShadow, "sha256", m.SHA256())
	}
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

// install puts sv in service as the active version, retiring the version it
// replaces once the batches using it are done.
func (r *Registry) install(name string, s *slot, sv *served) {
	const role = RoleActive
	m := sv.m
	r.mu.Lock()
	s.tried[m.Version()] = attempt{fingerprint: sv.fingerprint, role: role, at: time.Now()}
	old := s.active.Swap(sv)
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
	r       *Registry
	held    []*served
	by      map[string]*Model
	shadows map[string][]*Model
}

// Acquire returns the models serving now. Call Release when the batch is done.
func (r *Registry) Acquire() *Set {
	set := &Set{r: r, by: make(map[string]*Model, len(r.slots)), held: make([]*served, 0, len(r.slots)*(1+MaxShadows))}
	for name, s := range r.slots {
		for {
			sv := s.active.Load()
			if sv == nil {
				break
			}
			sv.mu.RLock()
			if sv.closed { // retired between Load and RLock: take the new one
				sv.mu.RUnlock()
				continue
			}
			set.held = append(set.held, sv)
			set.by[name] = sv.m
			break
		}
		if l := acquireShadows(&s.shadows); l != nil {
			if set.shadows == nil {
				set.shadows = make(map[string][]*Model, len(r.slots))
			}
			set.held = append(set.held, l.sv...)
			set.shadows[name] = l.ms
		}
	}
	return set
}

// acquireShadows read-locks every version of the current shadow list and
// returns it, or nil when none serves. A list is replaced before its versions
// retire, so a retired one means a newer list: it is taken instead.
func acquireShadows(p *atomic.Pointer[shadowList]) *shadowList {
	for {
		l := p.Load()
		if l == nil {
			return nil
		}
		ok := true
		for i, sv := range l.sv {
			sv.mu.RLock()
			if sv.closed {
				for _, x := range l.sv[:i+1] {
					x.mu.RUnlock()
				}
				ok = false
				break
			}
		}
		if ok {
			return l
		}
	}
}

// Model returns the live version of name, or nil.
func (s *Set) Model(name string) *Model { return s.by[name] }

// Shadows returns the shadow versions of name serving, the greatest first, or
// nil. The slice is shared: read it, do not change it.
func (s *Set) Shadows(name string) []*Model { return s.shadows[name] }

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
		r.install(name, s, sv)
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
	Note    string    `json:"note,omitempty"` // why a valid standby version does not serve
	At      time.Time `json:"checked_at,omitzero"`
}

// ModelStatus describes one served model.
type ModelStatus struct {
	Name string    `json:"name"`
	Live *ModelRef `json:"live"`
	// Shadow is the greatest of Shadows, kept for clients of one shadow.
	Shadow   *ModelRef       `json:"shadow,omitempty"`
	Shadows  []ModelRef      `json:"shadows,omitempty"` // the greatest first
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
		live, shadows := s.active.Load(), s.shadows.Load()
		st.Live = ref(live)
		if shadows != nil {
			for _, sv := range shadows.sv {
				st.Shadows = append(st.Shadows, *ref(sv))
			}
			st.Shadow = &st.Shadows[0]
		}
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
			vs := VersionStatus{Version: v, Role: a.role, State: "standby", Note: a.note, At: a.at}
			switch {
			case a.err != nil:
				vs.State, vs.Reason, vs.Error, vs.Note = "rejected", RejectReason(a.err), a.err.Error(), ""
			case live != nil && live.m.Version() == v:
				vs.State, vs.Note = "serving", ""
			case shadows.find(v) != nil:
				vs.State, vs.Note = "shadow", ""
			}
			st.Versions = append(st.Versions, vs)
		}
		out = append(out, st)
	}
	return out
}
