package actions

import (
	"fmt"

	"github.com/orderwatch/orderwatch/internal/binrec"
)

// ModelRef names the model behind a score.
type ModelRef struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	SHA256  string `json:"sha256,omitempty"`
}

// The binary form of a ModelRef, as the pipeline stores it inside its order
// record (see internal/binrec): its name, version and SHA-256, as strings. It is
// part of the stored format of order records. (Score points store a model
// reference in a form of their own: scorepoint.go.)

// AppendBinary appends the binary form of r to b. It never fails; it returns an
// error to be an encoding.BinaryAppender.
func (r *ModelRef) AppendBinary(b []byte) ([]byte, error) {
	b = binrec.AppendString(b, r.Name)
	b = binrec.AppendString(b, r.Version)
	b = binrec.AppendString(b, r.SHA256)
	return b, nil
}

// DecodeBinary sets r to the reference AppendBinary wrote at the front of b, and
// returns the bytes that follow it.
func (r *ModelRef) DecodeBinary(b []byte) (rest []byte, err error) {
	d := binrec.NewDecoder(b)
	r.Name, r.Version, r.SHA256 = d.Str(), d.Str(), d.Str()
	if err := d.Err(); err != nil {
		return nil, fmt.Errorf("actions: decode model reference: %w", err)
	}
	return d.Rest(), nil
}
