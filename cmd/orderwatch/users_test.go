package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/orderwatch/orderwatch/actions"
	"github.com/orderwatch/orderwatch/auth"
	"github.com/orderwatch/orderwatch/features"
)

// users runs `orderwatch users ARGS` with stdin.
func users(stdin string, args ...string) (stdout, stderr string, err error) {
	var out, errOut bytes.Buffer
	err = usersCmd(args, strings.NewReader(stdin), &out, &errOut)
	return out.String(), errOut.String(), err
}

// TestUsersCommand: `users add` writes a valid entry with a bcrypt hash of the
// password read from stdin and prints nothing secret; bad entries are refused
// naming what to change; `users token` prints a token once and the file keeps
// only its hash.
func TestUsersCommand(t *testing.T) {
	file := filepath.Join(t.TempDir(), "users.yaml")
	out, errOut, err := users("amy's password\n", "add", "amy", "--role", "approver", "--team", "credit-desk", "--team", "finance-controller", "--file", file, "--cost", "10")
	if err != nil || !strings.Contains(out, "amy is a approver for credit-desk, finance-controller") {
		t.Fatalf("users add = %q %q %v", out, errOut, err)
	}
	if strings.Contains(out+errOut, "amy's password") {
		t.Error("users add printed the password")
	}
	cases := []struct {
		args []string
		says string
	}{
		{[]string{"add", "bob", "--role", "approver"}, "approver needs teams"},
		{[]string{"add", "bob", "--role", "boss"}, `role "boss"`},
		{[]string{"add", "bob", "--role", "approver", "--team", "bad team"}, `teams[0] "bad team"`},
		{[]string{"add", "service", "--role", "admin"}, "shared token's"},
		{[]string{"token", "zed"}, "zed is not in"},
	}
	for _, c := range cases {
		if _, _, err := users("bob's password\n", append(c.args, "--file", file, "--cost", "10")...); err == nil || !strings.Contains(err.Error(), c.says) {
			t.Errorf("users %v = %v, want an error saying %q", c.args, err, c.says)
		}
	}
	if _, _, err := users("short\n", "add", "bob", "--role", "viewer", "--file", file, "--cost", "10"); err == nil || !strings.Contains(err.Error(), "shorter than") {
		t.Errorf("a short password = %v, want it refused", err)
	}
	tok, _, err := users("", "token", "amy", "--file", file)
	tok = strings.TrimSpace(tok)
	if err != nil || !auth.IsUserToken(tok) {
		t.Fatalf("users token = %q %v", tok, err)
	}
	raw, _ := os.ReadFile(file)
	if strings.Contains(string(raw), tok) || strings.Contains(string(raw), "amy's password") {
		t.Errorf("the users file holds a secret:\n%s", raw)
	}
	u, err := auth.LoadUsers(file)
	if err != nil || u.Len() != 1 {
		t.Fatalf("load the users file: %v (%d users)", err, u.Len())
	}
	if amy, _ := u.Lookup("amy"); len(amy.Tokens) != 1 || !strings.HasPrefix(amy.Password, "$2") || len(amy.Teams) != 2 {
		t.Errorf("amy = %+v, want a bcrypt hash, two teams and a token", amy)
	}
}

// TestDemoUsers: the demo's users file holds an admin "demo" and a viewer
// "viewer" whose new passwords sign in, and keeps any user someone added.
func TestDemoUsers(t *testing.T) {
	path := filepath.Join(t.TempDir(), "users.yaml")
	if _, _, err := users("amy's password\n", "add", "amy", "--role", "admin", "--file", path, "--cost", "10"); err != nil {
		t.Fatal(err)
	}
	u, adminPW, viewerPW, err := demoUsers(path)
	if err != nil {
		t.Fatal(err)
	}
	a, err := auth.New(auth.Options{Users: u})
	if err != nil {
		t.Fatal(err)
	}
	for name, pw := range map[string]string{"demo": adminPW, "viewer": viewerPW} {
		if _, err := a.SignIn(httptest.NewRequest("POST", "/signin", nil), name, pw); err != nil {
			t.Errorf("%s signs in with the printed password: %v", name, err)
		}
	}
	if d, _ := u.Lookup("demo"); d.Role != auth.RoleAdmin {
		t.Errorf("demo is a %s, want admin", d.Role)
	}
	if _, ok := u.Lookup("amy"); !ok || u.Len() != 3 {
		t.Errorf("amy kept = %v, %d users; want amy, demo and viewer", ok, u.Len())
	}
}

// TestApproveWithAPerUserToken: with --users and no shared token, an approver
// approves from the CLI with her own token and no --by, and the trail records
// her; a viewer's token is refused.
func TestApproveWithAPerUserToken(t *testing.T) {
	file := filepath.Join(t.TempDir(), "users.yaml")
	for _, add := range [][]string{
		{"add", "amy", "--role", "approver", "--team", "credit-desk"},
		{"add", "vic", "--role", "viewer"},
	} {
		if _, _, err := users("a password\n", append(add, "--file", file, "--cost", "10")...); err != nil {
			t.Fatal(err)
		}
	}
	amyTok, _, err := users("", "token", "amy", "--file", file)
	if err != nil {
		t.Fatal(err)
	}
	vicTok, _, err := users("", "token", "vic", "--file", file)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("ORDERWATCH_API_TOKEN", "") // no shared token: people only
	natsAddr := freeAddr(t)
	base := startRunWith(t, "--data", t.TempDir(), "--nats-listen", natsAddr, "--users", file)
	nc, err := nats.Connect("nats://" + natsAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	now := time.Now().UTC()
	for _, ev := range []string{
		fmt.Sprintf(`{"id":"u-1","type":"order.created","order_id":"SO-88","occurred_at":%q,"source":"erp","schema":1,"data":{"warehouse":"DAL","ship_cutoff":%q,"customer_id":"C-9","customer_tier":"gold","lines":2,"value":300}}`,
			now.Add(-time.Hour).Format(time.RFC3339), now.Add(2*time.Hour).Format(time.RFC3339)),
		fmt.Sprintf(`{"id":"u-2","type":"credit.hold","order_id":"SO-88","occurred_at":%q,"source":"finance","actor":"credit-engine","schema":1,"data":{"reason":"over_limit"}}`,
			now.Add(-30*time.Minute).Format(time.RFC3339)),
	} {
		var env struct{ ID, Type string }
		_ = json.Unmarshal([]byte(ev), &env)
		if err := nc.PublishMsg(&nats.Msg{Subject: features.Subject(env.Type, orderIDOf([]byte(ev))), Data: []byte(ev), Header: nats.Header{"Nats-Msg-Id": {env.ID}}}); err != nil {
			t.Fatal(err)
		}
	}
	var id string
	waitFor(t, "a decision pending approval for SO-88", func() bool {
		var out bytes.Buffer
		if err := decisionsCmd([]string{"pending", "--json", "--api", base}, &out); err != nil {
			t.Fatal(err)
		}
		var list struct{ Approvals []actions.View }
		_ = json.Unmarshal(out.Bytes(), &list)
		for _, v := range list.Approvals {
			if v.Decision.OrderID == "SO-88" && v.Waiting != nil && v.Waiting.Team == "credit-desk" {
				id = v.Decision.ID
			}
		}
		return id != ""
	})
	var out bytes.Buffer
	t.Setenv("ORDERWATCH_API_TOKEN", strings.TrimSpace(vicTok))
	if err := answerCmd("approve", []string{id, "--reason", "paid", "--api", base}, &out); err == nil || !strings.Contains(err.Error(), "403") {
		t.Errorf("a viewer approves = %v, want 403", err)
	}
	t.Setenv("ORDERWATCH_API_TOKEN", strings.TrimSpace(amyTok))
	if err := answerCmd("approve", []string{id, "--reason", "customer paid", "--by", "someone else", "--api", base}, &out); err != nil {
		t.Fatalf("amy approves with her token: %v", err)
	}
	out.Reset()
	if err := decisionsCmd([]string{"show", id, "--api", base}, &out); err != nil {
		t.Fatal(err)
	}
	var v actions.View
	if err := json.Unmarshal(out.Bytes(), &v); err != nil || len(v.Trail) != 1 || v.Trail[0].By != "amy" {
		t.Errorf("trail = %+v (%v), want amy's approval", v.Trail, err)
	}
}
