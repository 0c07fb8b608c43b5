package core

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"sort"
	"sync"
	"time"
)

// Errors of the pipeline service.
var (
	ErrPipelineNotFound = errors.New("pipeline not found")
	ErrPipelineExists   = errors.New("pipeline exists")
	ErrModuleNotFound   = errors.New("module not found")
)

// Guarantees a pipeline can give.
const (
	AtLeastOnce = "at_least_once"
	ExactlyOnce = "exactly_once"
)

// ModulesTopic is the internal topic that stores uploaded module bytes, one
// record per distinct module (key: its SHA-256), replicated like any topic.
const ModulesTopic = "__modules"

const (
	catalogModules   = "modules"
	catalogPipelines = "pipelines"
	// catalogRetired keeps, per deleted pipeline name, the incarnation its
	// position and state belong to (retiredPipeline), so that a create of
	// the same name must say whether to resume them or start fresh.
	catalogRetired = "pipelines-retired"
)

// ModuleVersion is one uploaded version of a module.
type ModuleVersion struct {
	Version   int    `json:"version"`
	SHA256    string `json:"sha256"`
	Size      int    `json:"size"`
	Offset    int64  `json:"offset"` // of its bytes in ModulesTopic
	CreatedAt int64  `json:"created_at"`
	// MemoryPages is the module's declared initial memory (64 KiB pages),
	// checked against a pipeline's limits.memory_pages at creation. Zero for
	// versions uploaded before it was recorded.
	MemoryPages uint32 `json:"memory_pages,omitempty"`
}

// Module is a named module with its versions (oldest first).
type Module struct {
	Name     string          `json:"name"`
	Versions []ModuleVersion `json:"versions"`
}

// Latest returns the newest version.
func (m *Module) Latest() ModuleVersion { return m.Versions[len(m.Versions)-1] }

// OnError says what a pipeline does with a batch that keeps failing.
type OnError struct {
	MaxAttempts      int    `json:"max_attempts"`       // default 3
	DeadLetterTopic  string `json:"dead_letter_topic"`  // default "<pipeline>.dlq", created if missing
	InitialBackoffMs int64  `json:"initial_backoff_ms"` // default 100
	MaxBackoffMs     int64  `json:"max_backoff_ms"`     // default 10,000
}

// Defaults and bounds of a pipeline's definition besides its limits
// (ProcessorLimits has those). PipelineSpec.Validate refuses values outside
// them with ErrBadRequest (HTTP 400); zero takes the default.
const (
	DefaultBatchSize = 1000
	BatchSizeMax     = 10_000

	DefaultMaxAttempts = 3
	MaxAttemptsMax     = 100

	DefaultInitialBackoffMs = 100
	DefaultMaxBackoffMs     = 10_000
	BackoffMsMax            = 3_600_000 // one hour, for either backoff

	DefaultTickIntervalMs = 1000
	TickIntervalMsMin     = 10
	TickIntervalMsMax     = 3_600_000 // one hour

	// ConfigBytesMax bounds a pipeline's config map (keys plus values): it
	// travels to the module with every batch.
	ConfigBytesMax = 64 << 10
)

// PipelineFailure says why a pipeline stopped: its module could not start
// (instantiation trapped, overran the time limit, or did not fit its memory
// limit) on_error.max_attempts times in a row, or its stored progress on an
// input partition (metadata, an outbox entry) is corrupt (ErrCorrupt: the
// first attempt fails it, and the position never moves). Resuming the
// pipeline clears it and tries again.
type PipelineFailure struct {
	Error     string `json:"error"`
	Topic     string `json:"topic"`     // the input partition whose worker gave up
	Partition int    `json:"partition"` //
	Attempts  int    `json:"attempts"`
	At        int64  `json:"at"` // Unix milliseconds
}

// Pipeline states, as PipelineSpec.State reports them.
const (
	PipelineRunning = "running"
	PipelinePaused  = "paused"
	PipelineFailed  = "failed"
)

// PipelineSpec defines a pipeline.
type PipelineSpec struct {
	Name      string            `json:"name"`
	Module    string            `json:"module"`
	Version   int               `json:"version"` // 0 at creation: the latest, pinned
	Inputs    []string          `json:"inputs"`
	Outputs   []string          `json:"outputs"`
	Config    map[string]string `json:"config"`
	Guarantee string            `json:"guarantee"` // at_least_once (default) or exactly_once
	OnError   OnError           `json:"on_error"`
	Limits    ProcessorLimits   `json:"limits"`
	BatchSize int               `json:"batch_size"` // records per Wasm call (and at most 1 MiB); default 1000
	// TickIntervalMs is how often an input partition with no new records
	// ticks its module (weir_tick: timers fire, the watermark of an idle
	// partition advances) while the module reports timers pending.
	// Default 1000.
	TickIntervalMs int64  `json:"tick_interval_ms,omitempty"`
	From           string `json:"from"` // earliest (default) or latest: where a new pipeline starts
	// InputPartitions is each input's partition count when the pipeline
	// was created. A partition added later (Broker.AddPartitions) starts
	// at its log start whatever From says, so that "latest" skips no
	// record written to it before its worker first ran. Create sets it.
	InputPartitions map[string]int `json:"input_partitions,omitempty"`
	Paused          bool           `json:"paused"`
	// Failure is set when the pipeline stopped because its module could not
	// start or its stored progress is corrupt; nothing runs until a resume
	// clears it. Create ignores it.
	Failure   *PipelineFailure `json:"failure,omitempty"`
	CreatedAt int64            `json:"created_at"`
	// Principal created the pipeline; it runs with that principal's rights
	// (docs/security.md). Empty when security was off. An upgrade keeps it.
	Principal string `json:"principal,omitempty"`
	// Revision counts upgrades (Upgrade): 0 as created. Workers restart at
	// a batch boundary whenever the running definition changes.
	Revision  int   `json:"revision"`
	UpdatedAt int64 `json:"updated_at,omitempty"` // of the last upgrade, Unix ms
	// Incarnation names the position and state the pipeline runs with in
	// its input partitions (pipeMeta.Incarnation). A fresh create picks a
	// new one, so its workers drop what a deleted pipeline of the same name
	// left; a create with CreateOptions.Resume takes the deleted one's.
	Incarnation int64 `json:"incarnation"`
}

// retiredPipeline is what a delete without purge leaves in catalogRetired.
type retiredPipeline struct {
	Incarnation int64 `json:"incarnation"`
	DeletedAt   int64 `json:"deleted_at"`
}

// sameRun reports whether two definitions run the same way: a worker of a
// stays valid for b. Pause and failure do not count (they stop workers).
func sameRun(a, b PipelineSpec) bool {
	a.Paused, b.Paused, a.Failure, b.Failure = false, false, nil, nil
	return reflect.DeepEqual(a, b)
}

// State is the pipeline's state: PipelineFailed when Failure is set, else
// PipelinePaused or PipelineRunning.
func (s *PipelineSpec) State() string {
	switch {
	case s.Failure != nil:
		return PipelineFailed
	case s.Paused:
		return PipelinePaused
	}
	return PipelineRunning
}

// Validate checks what a pipeline definition can be checked for on its own:
// name, guarantee, start position, batch size, error handling, limits and
// config size against the bounds above. Zero values are defaults and valid.
// It does not look at modules or topics (Create does). Errors wrap
// ErrBadRequest.
func (s *PipelineSpec) Validate() error {
	if !ValidTopicName(s.Name) {
		return Invalidf("pipeline name %q must be 1–249 characters of [A-Za-z0-9._-]", s.Name)
	}
	if s.Module == "" {
		return Invalidf("a pipeline needs a module")
	}
	if s.Version < 0 {
		return Invalidf("version must be 0 (the latest) or a module version")
	}
	if len(s.Inputs) == 0 || len(s.Outputs) == 0 {
		return Invalidf("a pipeline needs at least one input and one output topic")
	}
	switch s.Guarantee {
	case "", AtLeastOnce, ExactlyOnce:
	default:
		return Invalidf("guarantee must be %s or %s", AtLeastOnce, ExactlyOnce)
	}
	switch s.From {
	case "", "earliest", "latest":
	default:
		return Invalidf("from must be earliest or latest")
	}
	if s.BatchSize < 0 || s.BatchSize > BatchSizeMax {
		return Invalidf("batch_size must be between 1 and %d", BatchSizeMax)
	}
	if s.TickIntervalMs != 0 && (s.TickIntervalMs < TickIntervalMsMin || s.TickIntervalMs > TickIntervalMsMax) {
		return Invalidf("tick_interval_ms must be between %d and %d", TickIntervalMsMin, TickIntervalMsMax)
	}
	e := s.OnError
	if e.MaxAttempts < 0 || e.MaxAttempts > MaxAttemptsMax {
		return Invalidf("on_error.max_attempts must be between 1 and %d", MaxAttemptsMax)
	}
	if e.InitialBackoffMs < 0 || e.InitialBackoffMs > BackoffMsMax || e.MaxBackoffMs < 0 || e.MaxBackoffMs > BackoffMsMax {
		return Invalidf("on_error.initial_backoff_ms and max_backoff_ms must be between 1 and %d", BackoffMsMax)
	}
	initial, maxB := cmp.Or(e.InitialBackoffMs, DefaultInitialBackoffMs), cmp.Or(e.MaxBackoffMs, DefaultMaxBackoffMs)
	if initial > maxB {
		return Invalidf("on_error.initial_backoff_ms (%d) is above max_backoff_ms (%d)", initial, maxB)
	}
	if err := s.Limits.Validate(); err != nil {
		return err
	}
	n := 0
	for k, v := range s.Config {
		n += len(k) + len(v)
	}
	if n > ConfigBytesMax {
		return Invalidf("config has %d bytes of keys and values; at most %d", n, ConfigBytesMax)
	}
	return nil
}

// setDefaults fills the zero fields of a validated definition.
func (s *PipelineSpec) setDefaults() {
	s.Guarantee = cmp.Or(s.Guarantee, AtLeastOnce)
	s.From = cmp.Or(s.From, "earliest")
	s.BatchSize = cmp.Or(s.BatchSize, DefaultBatchSize)
	s.TickIntervalMs = cmp.Or(s.TickIntervalMs, DefaultTickIntervalMs)
	e := &s.OnError
	e.MaxAttempts = cmp.Or(e.MaxAttempts, DefaultMaxAttempts)
	e.InitialBackoffMs = cmp.Or(e.InitialBackoffMs, DefaultInitialBackoffMs)
	e.MaxBackoffMs = cmp.Or(e.MaxBackoffMs, DefaultMaxBackoffMs)
	e.DeadLetterTopic = cmp.Or(e.DeadLetterTopic, s.Name+".dlq")
	if s.Config == nil {
		s.Config = map[string]string{}
	}
}

// AccessChecker answers whether a stored principal may do op ("read",
// "write") on a resource ("topic", name); core/auth implements it.
type AccessChecker interface {
	PrincipalAllowed(principal, resourceType, resource, op string) bool
}

// PipelinesConfig configures the pipeline service.
type PipelinesConfig struct {
	// ResyncInterval: how often the runner checks which input partitions
	// this node leads (it also reacts to catalog changes). Default 500 ms.
	ResyncInterval time.Duration
	// MaxBatchBytes bounds the input read for one Wasm call. Default 1 MiB.
	MaxBatchBytes int
	// MaxModuleBytes bounds an upload. Default DefaultMaxModuleBytes
	// (16 MiB, the gateway's default body limit).
	MaxModuleBytes int
	Logger         *slog.Logger
	// LogLines is how many guest log lines this node keeps per pipeline
	// for Logs (GET /v1/pipelines/{name}/logs). Default DefaultLogLines.
	LogLines int
	// DrainTimeout bounds how long an upgrade waits for a partition's
	// worker to finish its batch under the old definition before it is
	// cancelled (its batch then runs again, whole, under the new one).
	// Default 70 s: above the longest batch time limit.
	DrainTimeout time.Duration
	// Access, when set, is checked before each batch: the pipeline's
	// principal must be allowed to read its inputs and write its outputs
	// and dead-letter topic, else the batch fails (docs/security.md).
	Access AccessChecker
}

// Pipelines runs Wasm pipelines: modules, pipeline definitions, and the
// workers that process each input partition on its leader.
type Pipelines struct {
	cfg    PipelinesConfig
	broker *Broker
	store  Store
	rt     Runtime
	log    *slog.Logger

	mu      sync.Mutex // guards workers and procs
	workers map[pipeKey]*pipeWorker
	procs   map[string]*procEntry // by pipeline name
	logs    *logRing              // guest log lines per pipeline (pipeline_logs.go)
	// closing counts processors closed once their draining workers end
	// (resync); stopAll waits for them.
	closing sync.WaitGroup
}

type procEntry struct {
	p       Processor
	module  string
	version int
	limits  ProcessorLimits
}

// Validate reports a negative count, size or duration (zero takes the
// default). NewPipelines calls it and returns its error.
func (c *PipelinesConfig) Validate() error {
	return negative("PipelinesConfig",
		durField("ResyncInterval", c.ResyncInterval),
		intField("MaxBatchBytes", c.MaxBatchBytes),
		intField("MaxModuleBytes", c.MaxModuleBytes),
		intField("LogLines", c.LogLines),
		durField("DrainTimeout", c.DrainTimeout),
	)
}

// NewPipelines returns the pipeline service, or cfg.Validate's error. Call
// Run to start processing.
func NewPipelines(b *Broker, rt Runtime, cfg PipelinesConfig) (*Pipelines, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.ResyncInterval <= 0 {
		cfg.ResyncInterval = 500 * time.Millisecond
	}
	if cfg.LogLines <= 0 {
		cfg.LogLines = DefaultLogLines
	}
	if cfg.DrainTimeout <= 0 {
		cfg.DrainTimeout = 70 * time.Second
	}
	if cfg.MaxBatchBytes <= 0 {
		cfg.MaxBatchBytes = 1 << 20
	}
	if cfg.MaxModuleBytes <= 0 {
		cfg.MaxModuleBytes = DefaultMaxModuleBytes
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Pipelines{cfg: cfg, broker: b, store: b.Store(), rt: rt, log: cfg.Logger,
		workers: map[pipeKey]*pipeWorker{}, procs: map[string]*procEntry{}, logs: newLogRing(cfg.LogLines)}, nil
}

// UploadModule validates wasm and stores it as the next version of name.
func (p *Pipelines) UploadModule(ctx context.Context, name string, wasm []byte) (Module, ModuleVersion, error) {
	if !ValidTopicName(name) {
		return Module{}, ModuleVersion{}, Invalidf("module name %q must be 1–249 characters of [A-Za-z0-9._-]", name)
	}
	if len(wasm) > p.cfg.MaxModuleBytes {
		return Module{}, ModuleVersion{}, &ModuleInvalidError{Reason: fmt.Sprintf("module of %d bytes exceeds the limit of %d", len(wasm), p.cfg.MaxModuleBytes)}
	}
	info, err := p.rt.Validate(ctx, wasm)
	if err != nil {
		return Module{}, ModuleVersion{}, err
	}
	sum := sha256.Sum256(wasm)
	sha := hex.EncodeToString(sum[:])
	// Reuse stored bytes when any module already has this content.
	offset := int64(-1)
	for _, m := range p.Modules() {
		for _, v := range m.Versions {
			if v.SHA256 == sha {
				offset = v.Offset
			}
		}
	}
	if offset < 0 {
		if err := p.ensureTopic(ctx, ModulesTopic); err != nil {
			return Module{}, ModuleVersion{}, err
		}
		log, err := p.store.Partition(ModulesTopic, 0)
		if err != nil {
			return Module{}, ModuleVersion{}, err
		}
		res, err := log.Append(ctx, &AppendBatch{Timestamp: time.Now().UnixMilli(), Records: []Record{{Key: []byte(sha), Value: wasm}}})
		if err != nil {
			return Module{}, ModuleVersion{}, err
		}
		offset = res.BaseOffset
	}
	for {
		old, exists := p.store.CatalogGet(catalogModules, name)
		var m Module
		if exists {
			if err := json.Unmarshal(old, &m); err != nil {
				return Module{}, ModuleVersion{}, err
			}
		} else {
			m.Name = name
		}
		v := ModuleVersion{Version: len(m.Versions) + 1, SHA256: sha, Size: len(wasm), Offset: offset, CreatedAt: time.Now().UnixMilli(), MemoryPages: info.MemoryPages}
		m.Versions = append(m.Versions, v)
		doc, _ := json.Marshal(m)
		cond := CatalogCond{IfAbsent: !exists}
		if exists {
			cond.IfEqual = old
		}
		ok, err := p.store.CatalogPut(ctx, catalogModules, name, doc, cond)
		if err != nil {
			return Module{}, ModuleVersion{}, err
		}
		if ok {
			return m, v, nil
		}
	}
}

func (p *Pipelines) ensureTopic(ctx context.Context, name string) error {
	if _, err := p.store.Topic(name); err == nil {
		return nil
	}
	_, err := p.broker.CreateTopic(ctx, TopicConfig{Name: name, Partitions: 1, RetentionMs: -1, RetentionBytes: -1})
	if errors.Is(err, ErrTopicExists) {
		return nil
	}
	return err
}

// Modules lists modules by name.
func (p *Pipelines) Modules() []Module {
	return catalogList(p.store, catalogModules, func(m Module) string { return m.Name })
}

// Module returns one module.
func (p *Pipelines) Module(name string) (Module, error) {
	return catalogGet[Module](p.store, catalogModules, name, ErrModuleNotFound, "module")
}

// DeleteModule removes a module; pipelines that use it refuse the delete.
func (p *Pipelines) DeleteModule(ctx context.Context, name string) error {
	if _, err := p.Module(name); err != nil {
		return err
	}
	for _, s := range p.List() {
		if s.Module == name {
			return Invalidf("module %q is used by pipeline %q", name, s.Name)
		}
	}
	_, err := p.store.CatalogDelete(ctx, catalogModules, name, CatalogCond{})
	return err
}

// moduleBytes reads a module version's bytes from ModulesTopic.
func (p *Pipelines) moduleBytes(ctx context.Context, v ModuleVersion) ([]byte, error) {
	log, err := p.store.Partition(ModulesTopic, 0)
	if err != nil {
		return nil, err
	}
	recs, err := log.Read(ctx, v.Offset, 1, v.Size+1024)
	if err != nil {
		return nil, err
	}
	if len(recs) == 0 || recs[0].Offset != v.Offset || string(recs[0].Key) != v.SHA256 {
		return nil, fmt.Errorf("%w: module bytes %s not found at offset %d", ErrUnavailable, v.SHA256, v.Offset)
	}
	sum := sha256.Sum256(recs[0].Value)
	if hex.EncodeToString(sum[:]) != v.SHA256 {
		return nil, fmt.Errorf("module bytes at offset %d do not match their SHA-256", v.Offset)
	}
	return recs[0].Value, nil
}

// CreateOptions say what a create does with the position and state a
// deleted pipeline of the same name left in its input partitions (a delete
// keeps them unless purged). With neither option a create resumes from
// them, as delete-and-create always did (the /v1 contract); with no
// leftover both are moot.
type CreateOptions struct {
	// Resume continues from the deleted pipeline's positions, keyed state
	// and counters.
	Resume bool
	// Reset starts fresh: the workers ship what the deleted pipeline had
	// committed but not delivered, then drop its positions, state and
	// counters and start at From.
	Reset bool
}

// Create is CreateWith without options.
func (p *Pipelines) Create(ctx context.Context, s PipelineSpec) (PipelineSpec, error) {
	return p.CreateWith(ctx, s, CreateOptions{})
}

// checkModule resolves s.Version (0: the module's latest) and checks the
// module version against the pipeline's limits: limits the runtime refuses
// and a module whose initial memory exceeds the memory limit are
// ErrBadRequest, an unknown module or version ErrModuleNotFound.
func (p *Pipelines) checkModule(s *PipelineSpec) error {
	m, err := p.Module(s.Module)
	if err != nil {
		return err
	}
	if s.Version == 0 {
		s.Version = m.Latest().Version
	}
	if s.Version > len(m.Versions) {
		return fmt.Errorf("%w: module %q has no version %d", ErrModuleNotFound, s.Module, s.Version)
	}
	lim, err := p.rt.Limits(s.Limits)
	if err != nil {
		return err
	}
	if v := m.Versions[s.Version-1]; v.MemoryPages > lim.MemoryPages {
		return Invalidf("module %q version %d declares %d pages (%d MiB) of initial memory, above the pipeline's memory limit of %d pages (%d MiB): raise limits.memory_pages (at most %d)",
			s.Module, s.Version, v.MemoryPages, v.MemoryPages/16, lim.MemoryPages, lim.MemoryPages/16, MemoryPagesMax)
	}
	return nil
}

// writes returns the topics a pipeline writes: its outputs, then its
// dead-letter topic.
func (s *PipelineSpec) writes() []string {
	return append(append([]string(nil), s.Outputs...), s.OnError.DeadLetterTopic)
}

// checkWrites refuses a pipeline that would write into a mirror topic not
// yet promoted, an output or its dead-letter topic (*MirrorError, naming
// the topic and its link; docs/geo-replication.md): at create and upgrade,
// and before every batch. A topic that does not exist passes unless a
// link is creating it (checkWritableTopic).
func (p *Pipelines) checkWrites(s PipelineSpec) error {
	for i, t := range s.writes() {
		if err := checkWritableTopic(p.store, t); err != nil {
			what := "output"
			if i == len(s.Outputs) {
				what = "dead-letter topic"
			}
			return fmt.Errorf("pipeline %q cannot write its %s: %w", s.Name, what, err)
		}
	}
	return nil
}

// CreateWith validates and stores a pipeline; runners pick it up on the
// leaders of its input partitions. Out-of-range fields
// (PipelineSpec.Validate), limits the runtime refuses, and a module whose
// initial memory exceeds the pipeline's memory limit are ErrBadRequest;
// an output or dead-letter topic that is a mirror topic not yet promoted
// is ErrMirrorTopic (*MirrorError); a leftover of a deleted pipeline of
// the same name is resumed unless opt.Reset (CreateOptions).
func (p *Pipelines) CreateWith(ctx context.Context, s PipelineSpec, opt CreateOptions) (PipelineSpec, error) {
	s.Failure, s.Revision, s.UpdatedAt = nil, 0, 0
	if opt.Resume && opt.Reset {
		return s, Invalidf("resume and reset exclude each other")
	}
	if err := s.Validate(); err != nil {
		return s, err
	}
	s.setDefaults()
	if err := p.checkModule(&s); err != nil {
		return s, err
	}
	s.Incarnation = time.Now().UnixNano()
	var retired *retiredPipeline
	if b, ok := p.store.CatalogGet(catalogRetired, s.Name); ok {
		retired = &retiredPipeline{}
		if err := json.Unmarshal(b, retired); err != nil {
			return s, err
		}
		switch {
		case opt.Reset:
			s.Incarnation = max(s.Incarnation, retired.Incarnation+1)
		default: // resume, said or not
			s.Incarnation = retired.Incarnation
		}
	} else if opt.Resume {
		return s, fmt.Errorf("%w: no deleted pipeline %q to resume (deleted with purge, or never created)", ErrPipelineNotFound, s.Name)
	}
	seen := map[string]bool{}
	s.InputPartitions = map[string]int{}
	for _, t := range s.Inputs {
		ti, err := p.store.Topic(t)
		if err != nil {
			return s, err
		}
		seen[t] = true
		s.InputPartitions[t] = ti.Partitions
	}
	for _, t := range s.Outputs {
		if _, err := p.store.Topic(t); err != nil {
			return s, err
		}
		if seen[t] {
			return s, Invalidf("topic %q is both an input and an output", t)
		}
	}
	if seen[s.OnError.DeadLetterTopic] {
		return s, Invalidf("the dead-letter topic cannot be an input")
	}
	if err := p.checkWrites(s); err != nil {
		return s, err
	}
	if err := p.ensureTopic(ctx, s.OnError.DeadLetterTopic); err != nil {
		return s, err
	}
	s.CreatedAt = time.Now().UnixMilli()
	doc, _ := json.Marshal(s)
	ok, err := p.store.CatalogPut(ctx, catalogPipelines, s.Name, doc, CatalogCond{IfAbsent: true})
	if err != nil {
		return s, err
	}
	if !ok {
		return s, fmt.Errorf("%w: pipeline %q already exists", ErrPipelineExists, s.Name)
	}
	if retired != nil {
		// Consumed: the next delete writes its own. A failure leaves a
		// record that a later create must answer for, nothing worse.
		if _, err := p.store.CatalogDelete(ctx, catalogRetired, s.Name, CatalogCond{}); err != nil {
			p.log.Warn("pipeline: retired record not removed", "pipeline", s.Name, "err", err)
		}
	}
	return s, nil
}

// PipelineUpgrade is what Upgrade may change in a running pipeline: what
// runs (module and version) and how (config, limits, batch size, tick
// interval). Inputs,
// outputs, guarantee, error handling and the principal stay.
type PipelineUpgrade struct {
	Module  string // required: the same module or another
	Version int    // 0: the module's latest
	// Config replaces the pipeline's config when not nil.
	Config map[string]string
	// Limits replace the pipeline's limits when not nil (zero fields take
	// the defaults, as at creation).
	Limits *ProcessorLimits
	// BatchSize replaces the pipeline's batch size when not 0.
	BatchSize int
	// TickIntervalMs replaces the pipeline's tick interval when not 0.
	TickIntervalMs int64
}

// Upgrade changes what a pipeline runs, keeping its positions, keyed state
// and counters: every partition's worker finishes the batch it is in
// (committing it under the old definition), stops, and its successor runs
// the new one from the next batch, so no batch is processed half by each
// and an exactly-once pipeline stays exact (docs/pipelines.md "Upgrading a
// module"). It increments Revision and clears a Failure (the upgraded
// module gets a fresh count of start attempts); a paused pipeline stays
// paused. Errors are Create's: an output that became a mirror topic (the
// topic deleted and created again by a link) refuses the upgrade.
func (p *Pipelines) Upgrade(ctx context.Context, name string, u PipelineUpgrade) (PipelineSpec, error) {
	if u.Module == "" {
		return PipelineSpec{}, Invalidf("an upgrade needs a module (the current one for another version)")
	}
	for {
		old, ok := p.store.CatalogGet(catalogPipelines, name)
		if !ok {
			return PipelineSpec{}, fmt.Errorf("%w: pipeline %q does not exist", ErrPipelineNotFound, name)
		}
		var s PipelineSpec
		if err := json.Unmarshal(old, &s); err != nil {
			return s, err
		}
		s.Module, s.Version = u.Module, u.Version
		if u.Config != nil {
			s.Config = u.Config
		}
		if u.Limits != nil {
			s.Limits = *u.Limits
		}
		if u.BatchSize != 0 {
			s.BatchSize = u.BatchSize
		}
		if u.TickIntervalMs != 0 {
			s.TickIntervalMs = u.TickIntervalMs
		}
		if err := s.Validate(); err != nil {
			return s, err
		}
		s.setDefaults()
		if err := p.checkModule(&s); err != nil {
			return s, err
		}
		if err := p.checkWrites(s); err != nil {
			return s, err
		}
		s.Revision++
		s.UpdatedAt = time.Now().UnixMilli()
		s.Failure = nil
		doc, _ := json.Marshal(s)
		done, err := p.store.CatalogPut(ctx, catalogPipelines, name, doc, CatalogCond{IfEqual: old})
		if err != nil || done {
			return s, err
		}
	}
}

// List returns every pipeline by name.
func (p *Pipelines) List() []PipelineSpec {
	return catalogList(p.store, catalogPipelines, func(s PipelineSpec) string { return s.Name })
}

// Get returns one pipeline.
func (p *Pipelines) Get(name string) (PipelineSpec, error) {
	return catalogGet[PipelineSpec](p.store, catalogPipelines, name, ErrPipelineNotFound, "pipeline")
}

// PipelineNames lists the names of the pipelines defined in the catalog,
// for a node that does not run the pipeline service (GET /v1/stats).
func PipelineNames(c Catalog) []string {
	var out []string
	for name := range c.CatalogList(catalogPipelines) {
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

// catalogList decodes every JSON document of a catalog table (skipping
// those that do not decode), sorted by name.
func catalogList[T any](c Catalog, table string, name func(T) string) []T {
	var out []T
	for _, b := range c.CatalogList(table) {
		var v T
		if json.Unmarshal(b, &v) == nil {
			out = append(out, v)
		}
	}
	sort.Slice(out, func(i, j int) bool { return name(out[i]) < name(out[j]) })
	return out
}

// catalogGet decodes the JSON document key of a catalog table; a missing
// one is notFound, naming it what.
func catalogGet[T any](c Catalog, table, key string, notFound error, what string) (T, error) {
	var v T
	b, ok := c.CatalogGet(table, key)
	if !ok {
		return v, fmt.Errorf("%w: %s %q does not exist", notFound, what, key)
	}
	err := json.Unmarshal(b, &v)
	return v, err
}

// Delete removes a pipeline; its workers stop. Its positions, keyed state
// and counters stay in the input partitions' state: a create of the same
// name must then say whether to resume them or reset them (CreateOptions).
// With purge nothing is kept for a later create: the next pipeline of the
// name starts fresh, and its workers drop the leftover first.
func (p *Pipelines) Delete(ctx context.Context, name string, purge bool) error {
	for {
		old, ok := p.store.CatalogGet(catalogPipelines, name)
		if !ok {
			return fmt.Errorf("%w: pipeline %q does not exist", ErrPipelineNotFound, name)
		}
		var s PipelineSpec
		if err := json.Unmarshal(old, &s); err != nil {
			return err
		}
		if purge {
			if _, err := p.store.CatalogDelete(ctx, catalogRetired, name, CatalogCond{}); err != nil {
				return err
			}
		} else {
			doc, _ := json.Marshal(retiredPipeline{Incarnation: s.Incarnation, DeletedAt: time.Now().UnixMilli()})
			if _, err := p.store.CatalogPut(ctx, catalogRetired, name, doc, CatalogCond{}); err != nil {
				return err
			}
		}
		done, err := p.store.CatalogDelete(ctx, catalogPipelines, name, CatalogCond{IfEqual: old})
		if err != nil || done {
			return err
		}
		// Changed meanwhile (an upgrade, a pause): read it again.
	}
}

// SetPaused pauses or resumes a pipeline. Resuming a failed pipeline clears
// its Failure: its workers start again, with a fresh count of attempts.
func (p *Pipelines) SetPaused(ctx context.Context, name string, paused bool) (PipelineSpec, error) {
	for {
		old, ok := p.store.CatalogGet(catalogPipelines, name)
		if !ok {
			return PipelineSpec{}, fmt.Errorf("%w: pipeline %q does not exist", ErrPipelineNotFound, name)
		}
		var s PipelineSpec
		if err := json.Unmarshal(old, &s); err != nil {
			return s, err
		}
		s.Paused = paused
		if !paused {
			s.Failure = nil
		}
		doc, _ := json.Marshal(s)
		done, err := p.store.CatalogPut(ctx, catalogPipelines, name, doc, CatalogCond{IfEqual: old})
		if err != nil || done {
			return s, err
		}
	}
}

// PartitionStatus is a pipeline's progress on one input partition.
type PartitionStatus struct {
	Topic        string `json:"topic"`
	Partition    int    `json:"partition"`
	Position     int64  `json:"position"` // next input offset to process
	Lag          int64  `json:"lag"`
	Processed    int64  `json:"processed"`
	Failed       int64  `json:"failed"` // failed attempts (traps, timeouts, limits)
	DeadLettered int64  `json:"dead_lettered"`
	Emitted      int64  `json:"emitted"`
	LastError    string `json:"last_error,omitempty"`
	Running      bool   `json:"running"` // a worker runs on this node
	// WorkerRevision is the pipeline revision (PipelineSpec.Revision) this
	// node's worker runs, when Running: after an upgrade it reaches the new
	// revision once the worker has been told to switch, and every batch
	// read from then on runs under the new definition.
	WorkerRevision int `json:"worker_revision"`
	Pending        int `json:"pending_outbox"`
}

// Status reports per-partition progress from the replicated state.
func (p *Pipelines) Status(name string) (PipelineSpec, []PartitionStatus, error) {
	s, err := p.Get(name)
	if err != nil {
		return s, nil, err
	}
	var out []PartitionStatus
	for _, t := range s.Inputs {
		ti, err := p.store.Topic(t)
		if err != nil {
			continue
		}
		for part := 0; part < ti.Partitions; part++ {
			ps := PartitionStatus{Topic: t, Partition: part}
			if log, err := p.store.Partition(t, part); err == nil {
				m := progress(log, s)
				ps.Position, ps.Processed, ps.Failed, ps.DeadLettered, ps.Emitted, ps.LastError = m.Pos, m.Processed, m.Failed, m.Dead, m.Emitted, m.LastError
				ps.Lag = max(0, log.HighWatermark()-m.Pos)
				log.StateScan(pipePrefix(s.Name)+"ob/", func(string, []byte) bool { ps.Pending++; return true })
			}
			p.mu.Lock()
			if w, ok := p.workers[pipeKey{s.Name, t, part}]; ok {
				ps.Running, ps.WorkerRevision = true, w.spec.Revision
			}
			p.mu.Unlock()
			out = append(out, ps)
		}
	}
	return s, out, nil
}

// progress is a pipeline's committed progress on an input partition, as
// this node's replica has it.
func progress(log PartitionLog, s PipelineSpec) pipeMeta {
	m, err := loadPipeMeta(log, s.Name)
	if err != nil {
		m.LastError = err.Error() // corrupt: the position is unknown (reported as 0)
	} else if _, had := log.StateGet(pipePrefix(s.Name) + "meta"); had && m.Incarnation != s.Incarnation {
		// Another incarnation's leftover, not yet reset by a worker: this
		// pipeline has not started here.
		m = pipeMeta{Pos: log.LogStart()}
	}
	return m
}

// PipelineLag is a pipeline's lag on one input partition: the partition's
// high watermark minus the pipeline's committed position, as Status
// computes it.
type PipelineLag struct {
	Pipeline  string
	Topic     string
	Partition int
	Position  int64
	Lag       int64
}

// Lags reports the lag of every pipeline (paused and failed ones too) on
// the input partitions this node leads, so that across a cluster each
// (pipeline, partition) is reported once, by the node whose replica is
// current and that runs its worker. Safe for concurrent use.
func (p *Pipelines) Lags() []PipelineLag {
	var out []PipelineLag
	for _, s := range p.List() {
		for _, t := range s.Inputs {
			ti, err := p.store.Topic(t)
			if err != nil {
				continue
			}
			for part := 0; part < ti.Partitions; part++ {
				log, err := p.store.Partition(t, part)
				if err != nil || !log.IsLeader() {
					continue
				}
				m := progress(log, s)
				out = append(out, PipelineLag{Pipeline: s.Name, Topic: t, Partition: part, Position: m.Pos, Lag: max(0, log.HighWatermark()-m.Pos)})
			}
		}
	}
	return out
}
