package whatif

import "errors"

// ErrTooManyDecisions is returned when a run decides more than
// Options.MaxDecisions times: the records would outgrow the memory bound.
// Narrow the window (--since, --from/--to, --warmup) or raise the bound.
var ErrTooManyDecisions = errors.New("whatif: more decisions than the bound allows")

// ErrTooManyNames is returned when the decisions of a comparison hold more than
// 65,535 distinct actions, rules, reasons, targets, teams and models together.
var ErrTooManyNames = errors.New("whatif: more than 65,535 distinct names in the decisions")
