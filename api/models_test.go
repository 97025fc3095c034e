package api_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/orderwatch/orderwatch/api"
)

// checkingModels is a model registry that reports on bundles as
// models.Registry.CheckBundle does: a bundle named "nan" fails the sweep.
type checkingModels struct{}

func (checkingModels) Status() any                   { return []any{} }
func (checkingModels) Activate(string, string) error { return nil }
func (checkingModels) Validate(string) error         { return nil }
func (checkingModels) CheckBundle(dir string) (any, bool) {
	if strings.HasSuffix(dir, "/nan/1.1.0") {
		return map[string]any{"dir": dir, "valid": false, "reason": "sweep_non_finite", "error": "models: output not finite for an extreme but valid input",
			"checks": []map[string]string{{"name": "sweep", "status": "failed", "reason": "sweep_non_finite"}}, "golden_max_error": 0}, false
	}
	return map[string]any{"dir": dir, "valid": true, "golden_max_error": 1e-7, "latency_us_per_row_batch_1": 12.5}, true
}

// TestValidateAnswersTheReport (issue 21, finding 2): POST
// /api/v1/models/validate answers the registry's report: "valid" as before,
// the reason code of a refused bundle and the figures; without a token the 401
// names ORDERWATCH_API_TOKEN.
func TestValidateAnswersTheReport(t *testing.T) {
	srv := httptest.NewServer(api.Handler(api.Options{Store: openStore(t), Token: testToken, Models: checkingModels{}}))
	defer srv.Close()
	post := func(token, dir string) (int, map[string]any, string) {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, srv.URL+"/api/v1/models/validate", strings.NewReader(`{"dir":"`+dir+`"}`))
		if err != nil {
			t.Fatal(err)
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var m map[string]any
		_ = json.Unmarshal(b, &m)
		return resp.StatusCode, m, string(b)
	}
	code, m, body := post(testToken, "/srv/models/cutoff_risk/nan/1.1.0")
	if code != http.StatusUnprocessableEntity || m["valid"] != false || m["reason"] != "sweep_non_finite" || m["checks"] == nil {
		t.Errorf("validate of a NaN bundle: %d %s, want 422 with valid false, reason sweep_non_finite and the checks", code, body)
	}
	code, m, body = post(testToken, "/srv/models/cutoff_risk/1.2.0")
	if code != http.StatusOK || m["valid"] != true || m["golden_max_error"] == nil || m["latency_us_per_row_batch_1"] == nil {
		t.Errorf("validate of a good bundle: %d %s, want 200 with valid true and the figures", code, body)
	}
	if code, _, body := post("", "/srv/models/cutoff_risk/1.2.0"); code != http.StatusUnauthorized || !strings.Contains(body, "ORDERWATCH_API_TOKEN") {
		t.Errorf("validate without a token: %d %s, want 401 naming ORDERWATCH_API_TOKEN", code, body)
	}
}
