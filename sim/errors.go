package sim

import "errors"

// ErrUnknownScenario is returned by ParseScenario and New for a scenario that is not
// one of Scenarios.
var ErrUnknownScenario = errors.New("sim: unknown scenario")

// ErrInvalidOptions is returned by New when an option is out of range; the error
// names the field.
var ErrInvalidOptions = errors.New("sim: invalid options")
