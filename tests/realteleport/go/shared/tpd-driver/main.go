// Command tpd-driver drives a real Teleport cluster for the real-teleport tests through
// Teleport's own Go client (api/client), acting as the users whose identity files
// (from `tctl auth sign`) it is given.
//
//	tpd-driver -addr 127.0.0.1:3025 -identity alice=/tmp/alice.id -identity bob=/tmp/bob.id
//
// It reads one JSON object per line on stdin and answers one JSON object per line on stdout,
// {"ok":true,...} or {"ok":false,"error":"..."}, so one process (one connection per user)
// serves a whole test. Operations ("as" names an identity):
//
//	{"op":"ping","as":"alice"}
//	{"op":"create","as":"alice","roles":["editor"],"reason":"r"}          -> "id"
//	{"op":"review","as":"bob","id":"..","state":"APPROVED","reason":"r"}  -> "state"
//	{"op":"delete","as":"admin","id":".."}
//	{"op":"get","as":"admin","id":".."}                                    -> "request"
//	{"op":"plugindata","as":"admin","id":"..","plugin":"pagerduty"}        -> "data" (null if none)
//	{"op":"fast","as":"alice","reviewer":"bob","roles":[..],"n":10,"action":"deny"}
//	    creates n requests at once, each followed at once by its action (deny, approve or
//	    delete, the deletion as "reviewer"); -> "ids", "gaps_ms" (create-to-action delay)
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/gravitational/teleport/api/client"
	"github.com/gravitational/teleport/api/types"
)

type identities map[string]string

func (ids identities) String() string { return fmt.Sprint(map[string]string(ids)) }
func (ids identities) Set(v string) error {
	name, path, ok := strings.Cut(v, "=")
	if !ok || name == "" || path == "" {
		return errors.New("want NAME=PATH")
	}
	ids[name] = path
	return nil
}

type driver struct {
	addr    string
	files   identities
	clients map[string]*client.Client
}

func (d *driver) client(ctx context.Context, name string) (*client.Client, error) {
	if c, ok := d.clients[name]; ok {
		return c, nil
	}
	path, ok := d.files[name]
	if !ok {
		return nil, fmt.Errorf("no identity named %q", name)
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	c, err := client.New(cctx, client.Config{
		Addrs:       []string{d.addr},
		Credentials: []client.Credentials{client.LoadIdentityFile(path)},
		DialTimeout: 10 * time.Second,
	})
	if err != nil {
		return nil, err
	}
	d.clients[name] = c
	return c, nil
}

type op struct {
	Op       string   `json:"op"`
	As       string   `json:"as"`
	Reviewer string   `json:"reviewer"`
	ID       string   `json:"id"`
	Roles    []string `json:"roles"`
	Reason   string   `json:"reason"`
	State    string   `json:"state"`
	Plugin   string   `json:"plugin"`
	N        int      `json:"n"`
	Action   string   `json:"action"`
}

type review struct {
	Author  string    `json:"author"`
	State   string    `json:"state"`
	Reason  string    `json:"reason"`
	Created time.Time `json:"created"`
}

type request struct {
	ID                string              `json:"id"`
	User              string              `json:"user"`
	Roles             []string            `json:"roles"`
	State             string              `json:"state"`
	Reason            string              `json:"reason"`
	ResolveReason     string              `json:"resolve_reason"`
	Created           time.Time           `json:"created"`
	SystemAnnotations map[string][]string `json:"system_annotations"`
	Reviews           []review            `json:"reviews"`
}

func toRequest(r types.AccessRequest) request {
	out := request{
		ID: r.GetName(), User: r.GetUser(), Roles: r.GetRoles(), State: r.GetState().String(),
		Reason: r.GetRequestReason(), ResolveReason: r.GetResolveReason(), Created: r.GetCreationTime(),
		SystemAnnotations: r.GetSystemAnnotations(), Reviews: []review{},
	}
	for _, rv := range r.GetReviews() {
		out.Reviews = append(out.Reviews, review{Author: rv.Author, State: rv.ProposedState.String(),
			Reason: rv.Reason, Created: rv.Created})
	}
	return out
}

func parseState(s string) (types.RequestState, error) {
	switch strings.ToUpper(s) {
	case "APPROVED", "APPROVE":
		return types.RequestState_APPROVED, nil
	case "DENIED", "DENY":
		return types.RequestState_DENIED, nil
	}
	return 0, fmt.Errorf("unknown review state %q", s)
}

func create(ctx context.Context, c *client.Client, user string, roles []string, reason string) (string, error) {
	req, err := types.NewAccessRequest(uuid.NewString(), user, roles...)
	if err != nil {
		return "", err
	}
	req.SetRequestReason(reason)
	got, err := c.CreateAccessRequestV2(ctx, req)
	if err != nil {
		return "", err
	}
	return got.GetName(), nil
}

func submit(ctx context.Context, c *client.Client, id, state, reason string) (types.AccessRequest, error) {
	st, err := parseState(state)
	if err != nil {
		return nil, err
	}
	return c.SubmitAccessReview(ctx, types.AccessReviewSubmission{RequestID: id,
		Review: types.AccessReview{ProposedState: st, Reason: reason, Created: time.Now()}})
}

func (d *driver) do(ctx context.Context, o op) (map[string]any, error) {
	c, err := d.client(ctx, o.As)
	if err != nil {
		return nil, err
	}
	switch o.Op {
	case "ping":
		p, err := c.Ping(ctx)
		if err != nil {
			return nil, err
		}
		return map[string]any{"cluster": p.ClusterName, "version": p.ServerVersion}, nil
	case "create":
		id, err := create(ctx, c, o.As, o.Roles, o.Reason)
		if err != nil {
			return nil, err
		}
		return map[string]any{"id": id}, nil
	case "review":
		r, err := submit(ctx, c, o.ID, o.State, o.Reason)
		if err != nil {
			return nil, err
		}
		return map[string]any{"state": r.GetState().String()}, nil
	case "delete":
		return map[string]any{}, c.DeleteAccessRequest(ctx, o.ID)
	case "get":
		rs, err := c.GetAccessRequests(ctx, types.AccessRequestFilter{ID: o.ID})
		if err != nil {
			return nil, err
		}
		if len(rs) == 0 {
			return map[string]any{"request": nil}, nil
		}
		return map[string]any{"request": toRequest(rs[0])}, nil
	case "plugindata":
		pds, err := c.GetPluginData(ctx, types.PluginDataFilter{Kind: types.KindAccessRequest,
			Resource: o.ID, Plugin: o.Plugin})
		if err != nil {
			return nil, err
		}
		for _, pd := range pds {
			if e, ok := pd.Entries()[o.Plugin]; ok && e != nil {
				return map[string]any{"data": e.Data}, nil
			}
		}
		return map[string]any{"data": nil}, nil
	case "fast":
		return d.fast(ctx, c, o)
	}
	return nil, fmt.Errorf("unknown op %q", o.Op)
}

// fast creates o.N requests in parallel, each followed at once by its action.
func (d *driver) fast(ctx context.Context, c *client.Client, o op) (map[string]any, error) {
	rc, err := d.client(ctx, o.Reviewer)
	if err != nil {
		return nil, err
	}
	ids := make([]string, o.N)
	gaps := make([]float64, o.N)
	errs := make([]error, o.N)
	var wg sync.WaitGroup
	for i := 0; i < o.N; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			id, err := create(ctx, c, o.As, o.Roles, fmt.Sprintf("%s %d", o.Reason, i))
			if err != nil {
				errs[i] = fmt.Errorf("create: %w", err)
				return
			}
			created := time.Now()
			ids[i] = id
			switch o.Action {
			case "deny":
				_, err = submit(ctx, rc, id, "DENIED", "fast deny")
			case "approve":
				_, err = submit(ctx, rc, id, "APPROVED", "fast approve")
			case "delete":
				err = rc.DeleteAccessRequest(ctx, id)
			default:
				err = fmt.Errorf("unknown action %q", o.Action)
			}
			gaps[i] = float64(time.Since(created).Microseconds()) / 1000
			if err != nil {
				errs[i] = fmt.Errorf("%s %s: %w", o.Action, id, err)
			}
		}(i)
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return map[string]any{"ids": ids, "gaps_ms": gaps}, nil
}

func main() {
	d := &driver{files: identities{}, clients: map[string]*client.Client{}}
	flag.StringVar(&d.addr, "addr", "127.0.0.1:3025", "auth server (or proxy) address")
	flag.Var(d.files, "identity", "NAME=PATH of an identity file (repeatable)")
	flag.Parse()

	ctx := context.Background()
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 1<<20)
	out := json.NewEncoder(os.Stdout)
	for in.Scan() {
		var o op
		var res map[string]any
		err := json.Unmarshal(in.Bytes(), &o)
		if err == nil {
			octx, cancel := context.WithTimeout(ctx, 60*time.Second)
			res, err = d.do(octx, o)
			cancel()
		}
		if err != nil {
			res = map[string]any{"ok": false, "error": err.Error()}
		} else {
			res["ok"] = true
		}
		if err := out.Encode(res); err != nil {
			os.Exit(1)
		}
	}
	for _, c := range d.clients {
		c.Close()
	}
}
