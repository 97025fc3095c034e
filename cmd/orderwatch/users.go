package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/term"

	"github.com/orderwatch/orderwatch/auth"
)

const usersUsage = `usage:
  orderwatch users add NAME --role viewer|approver|admin [--team T ...] [--file FILE] [--no-password]
        add a person to the users file, or change one: the password is read from
        stdin (asked twice on a terminal) and kept as a bcrypt hash; an approver
        needs --team, once per team of the policy's escalation ladders
  orderwatch users token NAME [--file FILE]
        create a per-user API token: printed once, the file keeps its SHA-256;
        the CLI sends it as ORDERWATCH_API_TOKEN
The file (default users.yaml) is what orderwatch run --users FILE reads; run reads it
at start (README "People and roles").`

// teamsFlag collects --team, once per team.
type teamsFlag []string

func (t *teamsFlag) String() string     { return strings.Join(*t, ",") }
func (t *teamsFlag) Set(v string) error { *t = append(*t, v); return nil }

// usersCmd manages the users file: `orderwatch users add|token`.
func usersCmd(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New(usersUsage)
	}
	sub, args := args[0], args[1:]
	fs := flag.NewFlagSet("users "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("file", "users.yaml", "the users `file` (created when missing, written 0600)")
	role := fs.String("role", "", "the person's `role`: viewer, approver or admin")
	var teams teamsFlag
	fs.Var(&teams, "team", "a `team` an approver answers for (repeat for more)")
	noPassword := fs.Bool("no-password", false, "no password: the person signs in through the proxy or uses tokens only")
	cost := fs.Int("cost", auth.DefaultPasswordCost, "bcrypt `cost` of the password hash (10 to 16)")
	pos, err := parseInterspersed(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return errors.New(usersUsage)
	}
	name := pos[0]
	users, err := readUsersFile(*file)
	if err != nil {
		return err
	}
	switch sub {
	case "add":
		if *cost < 10 || *cost > 16 {
			return fmt.Errorf("users add: --cost %d: want 10 to 16", *cost)
		}
		u, _ := users.Lookup(name)
		u.Name, u.Role, u.Teams = name, auth.Role(*role), teams
		u.Password = ""
		if !*noPassword {
			pw, err := readPassword(stdin, stderr, name)
			if err != nil {
				return err
			}
			if u.Password, err = auth.HashPassword(pw, *cost); err != nil {
				return fmt.Errorf("users add: %w", err)
			}
		}
		if users, err = users.With(u); err != nil {
			return fmt.Errorf("users add %s: %w", name, err)
		}
		if err := auth.WriteUsers(*file, users); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s is a %s%s in %s; restart orderwatch (or send it SIGHUP) to apply\n", name, u.Role, teamsNote(u.Teams), *file)
		return nil
	case "token":
		u, ok := users.Lookup(name)
		if !ok {
			return fmt.Errorf("users token: %s is not in %s: add them first with `orderwatch users add %s --role ROLE`", name, *file, name)
		}
		plain, tok := auth.NewToken(time.Now())
		u.Tokens = append(u.Tokens, tok)
		if users, err = users.With(u); err != nil {
			return fmt.Errorf("users token %s: %w", name, err)
		}
		if err := auth.WriteUsers(*file, users); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "a new API token of %s (%s); it is shown once, %s keeps only its SHA-256:\n", name, u.Role, *file)
		fmt.Fprintln(stdout, plain)
		return nil
	}
	return errors.New(usersUsage)
}

func teamsNote(teams []string) string {
	if len(teams) == 0 {
		return ""
	}
	return " for " + strings.Join(teams, ", ")
}

// readUsersFile reads the users file, or none when it does not exist yet.
func readUsersFile(path string) (*auth.Users, error) {
	u, err := auth.LoadUsers(path)
	if errors.Is(err, os.ErrNotExist) {
		if _, err := os.Stat(filepath.Dir(path)); err != nil {
			return nil, fmt.Errorf("users file %s: its directory: %w", path, err)
		}
		return nil, nil
	}
	return u, err
}

// readPassword reads a password: asked twice on a terminal (not echoed), else
// the first line of stdin.
func readPassword(stdin io.Reader, stderr io.Writer, name string) (string, error) {
	if f, ok := stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprintf(stderr, "password of %s: ", name)
		a, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(stderr)
		if err != nil {
			return "", fmt.Errorf("users add: read the password: %w", err)
		}
		fmt.Fprint(stderr, "again: ")
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(stderr)
		if err != nil {
			return "", fmt.Errorf("users add: read the password: %w", err)
		}
		if string(a) != string(b) {
			return "", errors.New("users add: the two passwords differ: try again")
		}
		return string(a), nil
	}
	line, err := bufio.NewReader(io.LimitReader(stdin, 4096)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("users add: read the password from stdin: %w", err)
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", errors.New("users add: no password on stdin: pipe one (printf '%s\\n' \"$PW\" | orderwatch users add ...) or give --no-password")
	}
	return line, nil
}

// demoUsers makes sure the demo's users file at path has an admin "demo" and a
// viewer "viewer", each with a new random password at every start (returned, to
// print once), keeping any other user someone added.
func demoUsers(path string) (users *auth.Users, adminPW, viewerPW string, err error) {
	users, err = readUsersFile(path)
	if err != nil {
		return nil, "", "", err
	}
	adminPW, viewerPW = demoPassword(), demoPassword()
	for _, e := range []struct {
		name string
		role auth.Role
		pw   string
	}{{"demo", auth.RoleAdmin, adminPW}, {"viewer", auth.RoleViewer, viewerPW}} {
		// Cost 10: a demo's sign-ins should be quick; its passwords are random.
		h, err := auth.HashPassword(e.pw, 10)
		if err != nil {
			return nil, "", "", err
		}
		u, _ := users.Lookup(e.name)
		u.Name, u.Role, u.Teams, u.Password = e.name, e.role, nil, h
		if users, err = users.With(u); err != nil {
			return nil, "", "", fmt.Errorf("demo users in %s: %w", path, err)
		}
	}
	if err := auth.WriteUsers(path, users); err != nil {
		return nil, "", "", err
	}
	return users, adminPW, viewerPW, nil
}

// demoPassword is 16 random letters and digits.
func demoPassword() string { return randomToken() + randomToken() }

// reloadUsersOnSIGHUP reads the users file again at each SIGHUP until ctx is
// done, and puts it in force when it is valid (the one in force stays
// otherwise, and the log says why).
func reloadUsersOnSIGHUP(ctx context.Context, path string, a *auth.Authenticator, log *slog.Logger) error {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-hup:
			u, err := auth.LoadUsers(path)
			if err != nil {
				log.Error("users reload refused, the users in force stay", "file", path, "err", err)
				continue
			}
			a.SetUsers(u)
			log.Info("users reloaded", "file", path, "users", u.Len())
		}
	}
}

// loadUsers reads run's users: --users FILE, or the demo's in the data dir. path
// is the file to read again on SIGHUP ("" for none); demoCreds are the demo's
// new passwords, to log once.
func loadUsers(cfg runConfig, log *slog.Logger) (users *auth.Users, path string, demoCreds []any, err error) {
	switch {
	case cfg.Users != "":
		users, err = auth.LoadUsers(cfg.Users)
		if err != nil {
			return nil, "", nil, err
		}
		log.Info("users loaded", "file", cfg.Users, "users", users.Len())
		return users, cfg.Users, nil, nil
	case cfg.Demo:
		path := filepath.Join(cfg.Data, "users.yaml")
		users, admin, viewer, err := demoUsers(path)
		if err != nil {
			return nil, "", nil, err
		}
		return users, path, []any{"file", path, "admin", "demo", "admin_password", admin, "viewer", "viewer", "viewer_password", viewer}, nil
	}
	return nil, "", nil, nil
}
