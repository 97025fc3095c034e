package api

import (
	"encoding/json"
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

func (s *server) models(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.o.Models.Status())
}

func (s *server) activateModel(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Version string `json:"version"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&body); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": `body must be {"version": "1.2.0"} (empty version unpins)`})
		return
	}
	if err := s.o.Models.Activate(r.PathValue("name"), body.Version); err != nil {
		writeJSON(w, http.StatusUnprocessableEntity, map[string]string{"error": err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, s.o.Models.Status())
}

func (s *server) validateModel(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Dir string `json:"dir"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&body); err != nil || body.Dir == "" {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": `body must be {"dir": "/path/to/<name>/<version>"}`})
		return
	}
	if err := s.o.Models.Validate(body.Dir); err != nil {
		writeJSON(w, http.StatusUnprocessableEntity, map[string]any{"valid": false, "error": err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"valid": true})
}
