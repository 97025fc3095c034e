package pipeline

import (
	"github.com/orderwatch/orderwatch/process"
)

// The Processor's types, under the names the pipeline gave them before it moved
// to package process.
type (
	// Message is process.Message.
	Message = process.Message
	// DeadLetterFunc is process.DeadLetterFunc.
	DeadLetterFunc = process.DeadLetterFunc
	// Row is process.Row.
	Row = process.Row
	// Scorer is process.Scorer.
	Scorer = process.Scorer
	// Scored is process.Scored.
	Scored = process.Scored
)
