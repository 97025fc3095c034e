package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/orderwatch/orderwatch/actions"
)

// The console tests drive a real headless Chromium (Debian's chromium package;
// `make test` installs it) against one `orderwatch run --demo` child process,
// through the console's DOM contract (README "Console"): ids, classes and
// attributes, never the wording.

// cliArgsEnv makes this test binary the orderwatch command itself (main, with
// these arguments), so that a test runs the CLI as a user does.
const cliArgsEnv = "ORDERWATCH_TEST_CLI_ARGS"

// screenshotsEnv names the directory the console tests write their screenshots
// to (a path relative to the repository's root, e.g. docs/); a temp dir when unset.
const screenshotsEnv = "ORDERWATCH_SCREENSHOTS"

// chromiumPath finds Chromium. Without it the browser tests fail in CI (CI set)
// and skip elsewhere, saying how to install it.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	const how = "Chromium is not installed: `make test` installs Debian's chromium package as root, or run apt-get install chromium"
	if os.Getenv("CI") != "" {
		t.Fatal("console browser tests: " + how)
	}
	t.Skip("console browser tests skipped: " + how)
	return ""
}

// browser starts a headless Chromium for the test and returns the context of
// its first tab, bounded by limit.
func browser(t *testing.T, limit time.Duration) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.Flag("headless", "new"),
		chromedp.NoSandbox, // CI runs as root
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(1280, 800),
		chromedp.UserDataDir(t.TempDir()),
	)
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	t.Cleanup(cancel)
	ctx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	t.Cleanup(cancelAlloc)
	ctx, cancelTab := chromedp.NewContext(ctx)
	t.Cleanup(cancelTab)
	// The first call starts the browser for ctx's life: no step limit on it.
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, 800)); err != nil {
		t.Fatalf("start Chromium: %v", err)
	}
	return ctx
}

// stepLimit bounds each step in the browser: a page that does not show what
// the test waits for fails the test then, not at the test's limit.
const stepLimit = 30 * time.Second

// step bounds a step in the browser's tab ctx by stepLimit.
func step(ctx context.Context) context.Context {
	ctx, cancel := context.WithTimeout(ctx, stepLimit)
	time.AfterFunc(stepLimit, cancel)
	return ctx
}

// signIn signs name in through the form, from a page that needs a user:
// it must send the browser to /signin and back.
func signIn(t *testing.T, ctx context.Context, base, name, password string) {
	t.Helper()
	if err := chromedp.Do(step(ctx),
		chromedp.Navigate(base+"/approvals"),
		chromedp.WaitVisible(chromedp.CSS(`form[action="/signin"] input[name=name]`)),
	); err != nil {
		t.Fatalf("%s: /approvals without a session shows no sign-in form: %v", name, err)
	}
	url, _ := chromedp.Run(step(ctx), chromedp.Location())
	if !strings.Contains(url, "/signin") {
		t.Errorf("%s: /approvals without a session is at %s, want /signin?next=...", name, url)
	}
	if err := chromedp.Do(step(ctx),
		chromedp.SendKeys(chromedp.CSS(`form[action="/signin"] input[name=name]`), name),
		chromedp.SendKeys(chromedp.CSS(`form[action="/signin"] input[name=password]`), password),
		chromedp.Submit(chromedp.CSS(`form[action="/signin"] input[name=password]`)),
		chromedp.WaitVisible(chromedp.CSS(`#nav`)),
	); err != nil {
		t.Fatalf("%s signs in through the form: %v", name, err)
	}
	url, _ = chromedp.Run(step(ctx), chromedp.Location())
	if !strings.HasSuffix(url, "/approvals") {
		t.Errorf("%s signed in at %s, want back at /approvals", name, url)
	}
}

// countOf is the number of elements sel matches on the current page.
func countOf(t *testing.T, ctx context.Context, sel string) int {
	t.Helper()
	n, err := chromedp.Run(step(ctx), chromedp.Evaluate[int](fmt.Sprintf(`document.querySelectorAll(%q).length`, sel)))
	if err != nil {
		t.Fatalf("count %s: %v", sel, err)
	}
	return n
}

// reloadUntil loads url until sel matches an element, within bound.
func reloadUntil(t *testing.T, ctx context.Context, url, sel string, bound time.Duration) {
	t.Helper()
	deadline := time.Now().Add(bound)
	for {
		if err := chromedp.Do(step(ctx), chromedp.Navigate(url), chromedp.WaitReady(chromedp.CSS(`#nav`))); err != nil {
			t.Fatalf("load %s: %v", url, err)
		}
		if countOf(t, ctx, sel) > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s shows no %s after %v", url, sel, bound)
		}
		time.Sleep(time.Second)
	}
}

// postForm posts fields to path as a form the test adds to the current page
// (the browser's session cookie goes along; the console's CSP allows no fetch)
// and returns the response's status.
func postForm(t *testing.T, ctx context.Context, path string, fields map[string]string) int64 {
	t.Helper()
	body, _ := json.Marshal(fields)
	js := fmt.Sprintf(`(() => {
		const f = document.createElement("form");
		f.id = "test-post"; f.method = "post"; f.action = %q;
		for (const [k, v] of Object.entries(%s)) {
			const i = document.createElement("input");
			i.type = "hidden"; i.name = k; i.value = v; f.appendChild(i);
		}
		document.body.appendChild(f);
		return true;
	})()`, path, body)
	if _, err := chromedp.Run(step(ctx), chromedp.Evaluate[bool](js)); err != nil {
		t.Fatalf("add a form to POST %s: %v", path, err)
	}
	return submitStatus(t, ctx, "POST "+path, chromedp.Submit(chromedp.CSS(`#test-post`)))
}

// submitStatus runs act, which sends a form, and returns the status of the
// page it loads.
func submitStatus(t *testing.T, ctx context.Context, what string, act chromedp.Action[chromedp.Void]) int64 {
	t.Helper()
	resp, err := chromedp.RunResponse(step(ctx), act)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return resp.Status
}

// csrfToken is the CSRF token the current page's forms carry (every console
// page has the sign-out form).
func csrfToken(t *testing.T, ctx context.Context) string {
	t.Helper()
	tok, err := chromedp.Run(step(ctx), chromedp.Evaluate[string](`document.querySelector("input[name=csrf_token]").value`))
	if err != nil || tok == "" {
		t.Fatalf("the page's CSRF token = %q, %v", tok, err)
	}
	return tok
}

// screenshot writes the viewport (1280x800) as dir/console-name.png.
func screenshot(t *testing.T, ctx context.Context, dir, name string) {
	t.Helper()
	png, err := chromedp.Run(step(ctx), chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatalf("screenshot of %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(dir, "console-"+name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// screenshotDir is $ORDERWATCH_SCREENSHOTS (relative to the repository's root),
// or a temp dir.
func screenshotDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv(screenshotsEnv)
	if dir == "" {
		return t.TempDir()
	}
	if !filepath.IsAbs(dir) {
		dir = filepath.Join("..", "..", dir) // this package is cmd/orderwatch
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// demoPasswords reads the demo users' passwords from the child's log line
// "demo users: sign in".
func demoPasswords(t *testing.T, c *runChild) (admin, viewer string) {
	t.Helper()
	waitFor(t, "the demo users' log line", func() bool {
		f, err := os.Open(c.log)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var l struct {
				Msg, AdminPassword, ViewerPassword string
			}
			if json.Unmarshal(sc.Bytes(), &struct {
				Msg    *string `json:"msg"`
				Admin  *string `json:"admin_password"`
				Viewer *string `json:"viewer_password"`
			}{&l.Msg, &l.AdminPassword, &l.ViewerPassword}) == nil && l.Msg == "demo users: sign in" {
				admin, viewer = l.AdminPassword, l.ViewerPassword
				return true
			}
		}
		return false
	})
	return admin, viewer
}

// cliProcess runs the orderwatch command (this test binary as main) with env added.
func cliProcess(t *testing.T, env []string, args ...string) string {
	t.Helper()
	raw, _ := json.Marshal(args)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(append(os.Environ(), cliArgsEnv+"="+string(raw)), env...)
	out, err := cmd.Output()
	if err != nil {
		stderr := ""
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("orderwatch %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr)
	}
	return string(out)
}

// showDecision is `orderwatch decisions show ID` run as a process.
func showDecision(t *testing.T, base, token, id string) actions.View {
	t.Helper()
	out := cliProcess(t, []string{"ORDERWATCH_API_TOKEN=" + token}, "decisions", "show", id, "--api", base)
	var v actions.View
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("orderwatch decisions show %s: %v\n%s", id, err, out)
	}
	return v
}

// answers are the approvals and rejections in a decision's trail (escalations
// may come and go while the test runs).
func answers(v actions.View) []actions.TrailRecord {
	var out []actions.TrailRecord
	for _, r := range v.Trail {
		if r.Kind == actions.TrailApproved || r.Kind == actions.TrailRejected {
			out = append(out, r)
		}
	}
	return out
}

// TestConsoleInBrowser: a person uses the console of a running demo in
// Chromium: signs in, sees the at-risk queue fill, opens an order and its
// timeline, approves a waiting decision (the trail records her, as `orderwatch
// decisions show` prints); a form posted without its CSRF token is refused, and
// a viewer gets no answer form and has her POST refused. Each of the five pages
// is written as a screenshot.
func TestConsoleInBrowser(t *testing.T) {
	chromiumPath(t)
	const token = "console-test-token"
	t.Setenv("ORDERWATCH_API_TOKEN", token)
	c := startChild(t, freeAddr(t), "--demo", "--data", t.TempDir(), "--nats-listen", freeAddr(t))
	adminPW, viewerPW := demoPasswords(t, c)
	shots := screenshotDir(t)
	ctx := browser(t, 8*time.Minute)

	// Sign in as the admin; the at-risk queue of the demo fills once its backlog
	// is scored: within 20 s on an idle machine with the race detector, 40-50 s
	// with three other processes on the two cores, more under make test's load
	// (a clean clone's CI took over a minute once).
	signIn(t, ctx, c.base, "demo", adminPW)
	reloadUntil(t, ctx, c.base+"/", `#at-risk tbody tr[data-order] a.order-link`, 3*time.Minute)
	if n := countOf(t, ctx, `#filters select, #filters input`); n == 0 {
		t.Errorf("the at-risk page has no filters")
	}
	screenshot(t, ctx, shots, "at-risk")

	// Open an order: its state and timeline.
	attr, err := chromedp.Run(step(ctx), chromedp.AttributeValue(chromedp.CSS(`#at-risk tbody tr[data-order]`), "data-order"))
	order := attr.Value
	if err != nil || order == "" {
		t.Fatalf("the first row's order = %q, %v", order, err)
	}
	if err := chromedp.Do(step(ctx),
		chromedp.Click(chromedp.CSS(`#at-risk tbody tr[data-order] a.order-link`)),
		chromedp.WaitVisible(chromedp.CSS(`#timeline`)),
	); err != nil {
		t.Fatalf("open order %s from the queue: %v", order, err)
	}
	url, _ := chromedp.Run(step(ctx), chromedp.Location())
	if !strings.HasSuffix(url, "/orders/"+order) {
		t.Errorf("the first row's link went to %s, want /orders/%s", url, order)
	}
	if n := countOf(t, ctx, `#timeline li`); n == 0 {
		t.Errorf("order %s's timeline has no entries", order)
	}
	if n := countOf(t, ctx, `#state`); n != 1 {
		t.Errorf("order %s's page has %d #state sections, want 1", order, n)
	}
	screenshot(t, ctx, shots, "order")

	for _, p := range []struct{ path, sel, name string }{
		{"/models", "#models", "models"},
		{"/operations", "#killswitch", "operations"},
	} {
		if err := chromedp.Do(step(ctx), chromedp.Navigate(c.base+p.path), chromedp.WaitVisible(chromedp.CSS(p.sel))); err != nil {
			t.Fatalf("%s shows no %s: %v", p.path, p.sel, err)
		}
		screenshot(t, ctx, shots, p.name)
	}

	// A decision waits for approval (the demo's policy asks for some).
	reloadUntil(t, ctx, c.base+"/approvals", `#approvals tr[data-decision] form.answer`, 2*time.Minute)
	attr, err = chromedp.Run(step(ctx), chromedp.AttributeValue(chromedp.CSS(`#approvals tr[data-decision]`), "data-decision"))
	id := attr.Value
	if err != nil || id == "" {
		t.Fatalf("the first waiting decision's id = %q, %v", id, err)
	}
	screenshot(t, ctx, shots, "approvals")
	answer := "/approvals/" + id + "/answer"

	// The answer form posted without its CSRF token is refused.
	form := fmt.Sprintf(`form.answer[action=%q]`, answer)
	if _, err := chromedp.Run(step(ctx), chromedp.Evaluate[bool](fmt.Sprintf(
		`(() => { document.querySelectorAll(%q).forEach(i => i.remove()); return true })()`, form+` input[name=csrf_token]`))); err != nil {
		t.Fatalf("take the CSRF token out of %s: %v", form, err)
	}
	if err := chromedp.Do(step(ctx), chromedp.SendKeys(chromedp.CSS(form+` input[name=reason]`), "no csrf token")); err != nil {
		t.Fatalf("fill the reason of %s: %v", form, err)
	}
	if code := submitStatus(t, ctx, "approve without the CSRF token", chromedp.Click(chromedp.CSS(form+` button[name=answer][value=approve]`))); code != 403 {
		t.Errorf("the admin's answer form without its CSRF token: %d, want 403", code)
	}

	// A viewer sees the waiting decision but no way to answer it, and her POST
	// (with her own session and CSRF token) is refused.
	vctx, cancel := chromedp.NewContext(ctx, chromedp.WithNewBrowserContext())
	defer cancel()
	if err := chromedp.Do(vctx); err != nil { // its first call: no step limit
		t.Fatalf("open a second browser context: %v", err)
	}
	signIn(t, vctx, c.base, "viewer", viewerPW)
	if err := chromedp.Do(step(vctx), chromedp.WaitVisible(chromedp.CSS(`#approvals`))); err != nil {
		t.Fatalf("the viewer's /approvals: %v", err)
	}
	if n := countOf(t, vctx, fmt.Sprintf(`#approvals tr[data-decision=%q]`, id)); n != 1 {
		t.Errorf("the viewer sees decision %s %d times, want once", id, n)
	}
	for _, sel := range []string{`form.answer`, `button[name=answer]`, `input[name=decision]`, `#bulk`} {
		if n := countOf(t, vctx, sel); n != 0 {
			t.Errorf("the viewer's /approvals has %d %s, want none", n, sel)
		}
	}
	if code := postForm(t, vctx, answer, map[string]string{"answer": "approve", "reason": "a viewer tries", "csrf_token": csrfToken(t, vctx)}); code != 403 {
		t.Errorf("the viewer's answer with her CSRF token: %d, want 403", code)
	}
	if v := showDecision(t, c.base, token, id); len(answers(v)) != 0 || v.Waiting == nil {
		t.Fatalf("after the refused answers decision %s has answers %+v, waiting %v; want none, still waiting", id, answers(v), v.Waiting)
	}

	// The admin approves it through its form; the trail records her.
	if err := chromedp.Do(step(ctx),
		chromedp.Navigate(c.base+"/approvals"),
		chromedp.WaitVisible(chromedp.CSS(form)),
		chromedp.SendKeys(chromedp.CSS(form+` input[name=reason]`), "customer paid, checked in the browser"),
		chromedp.Click(chromedp.CSS(form+` button[name=answer][value=approve]`)),
		chromedp.WaitVisible(chromedp.CSS(`#flash`)),
	); err != nil {
		t.Fatalf("approve %s through its form: %v", id, err)
	}
	got := answers(showDecision(t, c.base, token, id))
	if len(got) != 1 || got[0].By != "demo" || got[0].Kind != actions.TrailApproved || got[0].Reason != "customer paid, checked in the browser" {
		t.Errorf("decision %s's answers = %+v, want one approval by demo with the reason typed", id, got)
	}

	bulkAnswer(t, ctx, c.base, token, id)
	killSwitchWithConfirmation(t, ctx, c.base)
	pageAtRisk(t, ctx, c.base)
	if !c.running() {
		t.Errorf("orderwatch run exited: %v", c.err)
	}
}

// domValues are the values of attribute attr of the elements sel matches on the
// current page.
func domValues(t *testing.T, ctx context.Context, sel, attr string) []string {
	t.Helper()
	vs, err := chromedp.Run(step(ctx), chromedp.Evaluate[[]string](fmt.Sprintf(
		`Array.from(document.querySelectorAll(%q), e => e.getAttribute(%q))`, sel, attr)))
	if err != nil {
		t.Fatalf("%s's %s: %v", sel, attr, err)
	}
	return vs
}

// domText is the text of the first element sel matches on the current page.
func domText(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	s, err := chromedp.Run(step(ctx), chromedp.Evaluate[string](fmt.Sprintf(`(document.querySelector(%q) || {}).textContent || ""`, sel)))
	if err != nil {
		t.Fatalf("the text of %s: %v", sel, err)
	}
	return s
}

// bulkAnswer: the admin ticks several waiting decisions (not done, answered
// already) on /approvals, reviews them on the preview (each listed, nothing
// answered yet) and confirms; the flash says how many were approved and by
// whom, and each decision's trail records demo.
func bulkAnswer(t *testing.T, ctx context.Context, base, token, done string) {
	t.Helper()
	const want = 2
	var ids []string
	deadline := time.Now().Add(90 * time.Second)
	for {
		reloadUntil(t, ctx, base+"/approvals", `#approvals`, stepLimit)
		ids = nil
		for _, v := range domValues(t, ctx, `#approvals tr[data-decision] input[name=decision]`, "value") {
			if v != done && len(ids) < want {
				ids = append(ids, v)
			}
		}
		if len(ids) == want {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/approvals shows %d decisions to tick after 90 s, want %d", len(ids), want)
		}
		time.Sleep(2 * time.Second)
	}
	var acts []chromedp.Action[chromedp.Void]
	for _, id := range ids {
		acts = append(acts, chromedp.Click(chromedp.CSS(fmt.Sprintf(`#approvals input[name=decision][value=%q]`, id))))
	}
	acts = append(acts,
		chromedp.SendKeys(chromedp.CSS(`#bulk input[name=reason]`), "bulk: checked in the browser"),
		chromedp.Click(chromedp.CSS(`#bulk button[name=answer][value=approve]`)),
		chromedp.WaitVisible(chromedp.CSS(`#preview`)),
	)
	if err := chromedp.Do(step(ctx), acts...); err != nil {
		t.Fatalf("tick %v and review their approval: %v", ids, err)
	}
	if got := domValues(t, ctx, `#preview li[data-decision]`, "data-decision"); !slices.Equal(slices.Sorted(slices.Values(got)), slices.Sorted(slices.Values(ids))) {
		t.Errorf("the preview lists %v, want the ticked %v", got, ids)
	}
	if got := domValues(t, ctx, `#confirm input[name=decision]`, "value"); !slices.Equal(slices.Sorted(slices.Values(got)), slices.Sorted(slices.Values(ids))) {
		t.Errorf("the confirm form carries %v, want the ticked %v", got, ids)
	}
	for _, id := range ids {
		if v := showDecision(t, base, token, id); len(answers(v)) != 0 {
			t.Errorf("decision %s is answered by the preview: %+v", id, answers(v))
		}
	}
	if err := chromedp.Do(step(ctx),
		chromedp.Click(chromedp.CSS(`#confirm button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`#flash`)),
	); err != nil {
		t.Fatalf("confirm the approval of %v: %v", ids, err)
	}
	flash := domText(t, ctx, `#flash`)
	if !strings.HasPrefix(flash, fmt.Sprintf("%d ", want)) || !strings.Contains(flash, "demo") {
		t.Errorf("the flash after the bulk approval = %q, want it to name %d answered by demo", flash, want)
	}
	for _, id := range ids {
		got := answers(showDecision(t, base, token, id))
		if len(got) != 1 || got[0].By != "demo" || got[0].Kind != actions.TrailApproved || got[0].Reason != "bulk: checked in the browser" {
			t.Errorf("decision %s's answers = %+v, want one approval by demo with the bulk reason", id, got)
		}
	}
}

// killSwitchWithConfirmation: on /operations the admin's kill switch form
// posted without its confirmation is refused (400) and changes nothing; with
// the box ticked it turns the switch on (the page says halted), and the same
// form, ticked again, turns it off.
func killSwitchWithConfirmation(t *testing.T, ctx context.Context, base string) {
	t.Helper()
	if err := chromedp.Do(step(ctx), chromedp.Navigate(base+"/operations"), chromedp.WaitVisible(chromedp.CSS(`#killswitch-confirm`))); err != nil {
		t.Fatalf("/operations shows no kill switch form: %v", err)
	}
	if n := countOf(t, ctx, `#killswitch .ks-state.running`); n != 1 {
		t.Fatalf("the kill switch is not off at first (%d .ks-state.running)", n)
	}
	if code := postForm(t, ctx, "/operations/killswitch", map[string]string{"on": "true", "reason": "no confirmation", "csrf_token": csrfToken(t, ctx)}); code != 400 {
		t.Errorf("the kill switch without its confirmation: %d, want 400", code)
	}
	for _, turn := range []struct{ reason, state string }{{"incident drill: on", "halted"}, {"incident drill: off", "running"}} {
		if err := chromedp.Do(step(ctx), chromedp.Navigate(base+"/operations"), chromedp.WaitVisible(chromedp.CSS(`#killswitch-confirm`))); err != nil {
			t.Fatalf("/operations: %v", err)
		}
		if countOf(t, ctx, `#killswitch .ks-state.halted`) != 0 && turn.state == "halted" {
			t.Fatal("the kill switch is on after the unconfirmed form")
		}
		if err := chromedp.Do(step(ctx),
			chromedp.SendKeys(chromedp.CSS(`#killswitch-confirm input[name=reason]`), turn.reason),
			chromedp.Click(chromedp.CSS(`#killswitch-confirm input[name=confirm]`)),
			chromedp.Click(chromedp.CSS(`#killswitch-confirm button[type=submit]`)),
			chromedp.WaitVisible(chromedp.CSS(`#flash`)),
		); err != nil {
			t.Fatalf("turn the kill switch (%s): %v", turn.reason, err)
		}
		if n := countOf(t, ctx, `#killswitch .ks-state.`+turn.state); n != 1 {
			t.Errorf("after %q the kill switch is not %s", turn.reason, turn.state)
		}
		if flash := domText(t, ctx, `#flash`); !strings.Contains(flash, "demo") {
			t.Errorf("the flash after %q = %q, want it to name demo", turn.reason, flash)
		}
	}
}

// pageAtRisk: the queue of all open orders, by minutes to the cutoff (a
// stable order while the demo runs), has more than a page: a#next leads to a
// second page of other orders.
func pageAtRisk(t *testing.T, ctx context.Context, base string) {
	t.Helper()
	reloadUntil(t, ctx, base+"/?at_risk=0&sort=cutoff", `a#next`, time.Minute)
	first := domValues(t, ctx, `#at-risk tbody tr[data-order]`, "data-order")
	if err := chromedp.Do(step(ctx),
		chromedp.Click(chromedp.CSS(`a#next`)),
		chromedp.WaitVisible(chromedp.CSS(`#at-risk`)),
	); err != nil {
		t.Fatalf("follow a#next: %v", err)
	}
	url, _ := chromedp.Run(step(ctx), chromedp.Location())
	if !strings.Contains(url, "cursor=") || !strings.Contains(url, "sort=cutoff") || !strings.Contains(url, "at_risk=0") {
		t.Errorf("a#next went to %s, want the same filters with a cursor", url)
	}
	second := domValues(t, ctx, `#at-risk tbody tr[data-order]`, "data-order")
	if len(first) != 50 || len(second) == 0 {
		t.Errorf("the pages have %d and %d orders, want 50 and at least one", len(first), len(second))
	}
	for _, o := range second {
		if slices.Contains(first, o) {
			t.Errorf("order %s is on both pages", o)
		}
	}
}
