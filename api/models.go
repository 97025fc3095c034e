package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
)

// ModelAdmin is what the API needs of the model registry.
type ModelAdmin interface {
	// Status describes every served model: live and shadow versions, pins,
	// rejected versions with their reasons.
	Status() any
	// Activate pins name to version, or unpins it when version is empty.
	Activate(name, version string) error
	// Validate checks a bundle directory as a swap would, without serving it.
	Validate(dir string) error
}

// BundleChecker is a ModelAdmin that also reports how a bundle fares
// (models.Registry): POST /api/v1/models/validate answers its report.
type BundleChecker interface {
	// CheckBundle checks dir as a swap would, without serving it: report is
	// the answer (JSON with "valid", the reason code of the first failed check
	// as "reason", each check and the figures), valid whether it would serve.
	CheckBundle(dir string) (report any, valid bool)
}

// maxModelBody is the largest body the models endpoints read.
const maxModelBody = 4096

func (s *server) models(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.o.Models.Status())
}

func (s *server) activateModel(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Version *string `json:"version"`
	}
	const want = `want {"version": "1.2.0"} ("" unpins)`
	if err := decodeStrict(w, r, &body); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error() + ": " + want})
		return
	}
	if body.Version == nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "body: version is missing: " + want})
		return
	}
	if err := s.o.Models.Activate(r.PathValue("name"), *body.Version); err != nil {
		writeJSON(w, http.StatusUnprocessableEntity, map[string]string{"error": err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, s.o.Models.Status())
}

func (s *server) validateModel(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Dir string `json:"dir"`
	}
	const want = `want {"dir": "/path/to/<name>/<version>"}`
	if err := decodeStrict(w, r, &body); err != nil || body.Dir == "" {
		msg := "body: dir is missing"
		if err != nil {
			msg = err.Error()
		}
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": msg + ": " + want})
		return
	}
	if c, ok := s.o.Models.(BundleChecker); ok {
		report, valid := c.CheckBundle(body.Dir)
		code := http.StatusOK
		if !valid {
			code = http.StatusUnprocessableEntity
		}
		writeJSON(w, code, report)
		return
	}
	if err := s.o.Models.Validate(body.Dir); err != nil {
		writeJSON(w, http.StatusUnprocessableEntity, map[string]any{"valid": false, "error": err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"valid": true})
}

// decodeStrict decodes the request's body, one JSON object of at most
// maxModelBody bytes, into v: an unknown field (a typo such as "verison" must
// not pass for an empty version) or data after the object is an error naming it.
func decodeStrict(w http.ResponseWriter, r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxModelBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if mbe := new(http.MaxBytesError); errors.As(err, &mbe) {
			return fmt.Errorf("body: over %d bytes", maxModelBody)
		}
		return fmt.Errorf("body: %w", err) // json: unknown field "verison"
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("body: data after the JSON object")
	}
	return nil
}
