// aws-auth-oracle: what aws-iam-authenticator (the version in go.mod, the one EKS runs) reads in
// an aws-auth ConfigMap, for the differential tests of aws-auth-operator's reader and renderer.
//
// It decodes the manifest as kubectl and the API server do (sigs.k8s.io/yaml), parses each data
// key with the authenticator's own ParseMap, builds its lookup table the way its MapStore does
// and looks ARNs up the way its ConfigMapMapper does.
//
//	aws-auth-oracle [ARN...] < configmap.yaml   one ConfigMap, JSON out
//	aws-auth-oracle --batch                     JSON lines: {"manifest": "...", "arns": [...]}
//	                                            or {"data": {...}, "arns": [...]}; one line out each
//	aws-auth-oracle --canonicalize < arns       one ARN a line in, `canonical<TAB>error` out
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/sirupsen/logrus"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/aws-iam-authenticator/pkg/arn"
	"sigs.k8s.io/aws-iam-authenticator/pkg/config"
	"sigs.k8s.io/aws-iam-authenticator/pkg/mapper/configmap"
	"sigs.k8s.io/yaml"
)

type request struct {
	Manifest *string           `json:"manifest,omitempty"`
	Data     map[string]string `json:"data,omitempty"`
	ARNs     []string          `json:"arns,omitempty"`
}

type entry struct {
	ARN      string   `json:"arn"`
	SSO      bool     `json:"sso,omitempty"`
	Username string   `json:"username"`
	Groups   []string `json:"groups"`
	UserID   string   `json:"userid,omitempty"`
}

type key struct {
	Present bool    `json:"present"`
	Error   string  `json:"error,omitempty"`
	Entries []entry `json:"entries"`
}

type lookup struct {
	ARN            string   `json:"arn"`
	Canonical      string   `json:"canonical,omitempty"`
	Error          string   `json:"error,omitempty"`
	Section        string   `json:"section,omitempty"`
	Username       string   `json:"username,omitempty"`
	Groups         []string `json:"groups,omitempty"`
	Ambiguous      bool     `json:"ambiguous,omitempty"`
	AccountAllowed bool     `json:"accountAllowed,omitempty"`
}

type response struct {
	DecodeError string            `json:"decodeError,omitempty"`
	Data        map[string]string `json:"data,omitempty"`
	Keys        map[string]key    `json:"keys"`
	Accounts    []string          `json:"accounts"`
	Lookups     []lookup          `json:"lookups"`
}

func groups(g []string) []string {
	if g == nil {
		return []string{}
	}
	return g
}

func roleEntries(rs []config.RoleMapping) []entry {
	out := []entry{}
	for _, r := range rs {
		e := entry{ARN: r.RoleARN, Username: r.Username, Groups: groups(r.Groups), UserID: r.UserId}
		if r.RoleARN == "" && r.SSO != nil {
			e.ARN, e.SSO = r.SSOArnLike(), true
		}
		out = append(out, e)
	}
	return out
}

func userEntries(us []config.UserMapping) []entry {
	out := []entry{}
	for _, u := range us {
		out = append(out, entry{ARN: u.UserARN, Username: u.Username, Groups: groups(u.Groups), UserID: u.UserId})
	}
	return out
}

func answer(req request) response {
	resp := response{Keys: map[string]key{}, Accounts: []string{}, Lookups: []lookup{}}
	data := req.Data
	if req.Manifest != nil {
		var cm corev1.ConfigMap
		if err := yaml.Unmarshal([]byte(*req.Manifest), &cm); err != nil {
			resp.DecodeError = err.Error()
			return resp
		}
		data = cm.Data
		resp.Data = cm.Data
	}
	// Each key alone, to tell which one fails.
	for _, k := range []string{"mapRoles", "mapUsers", "mapAccounts"} {
		v, ok := data[k]
		if !ok {
			resp.Keys[k] = key{Entries: []entry{}}
			continue
		}
		users, roles, accounts, err := configmap.ParseMap(map[string]string{k: v})
		kr := key{Present: true, Entries: []entry{}}
		if err != nil {
			kr.Error = err.Error()
		}
		switch k {
		case "mapRoles":
			kr.Entries = roleEntries(roles)
		case "mapUsers":
			kr.Entries = userEntries(users)
		default:
			for _, a := range accounts {
				kr.Entries = append(kr.Entries, entry{ARN: a, Groups: []string{}})
			}
		}
		resp.Keys[k] = kr
	}
	// The whole map, as the MapStore keeps it: by Key(), the last entry of a key winning.
	users, roles, accounts, _ := configmap.ParseMap(data)
	roleStore := map[string]config.RoleMapping{}
	for _, r := range roles {
		roleStore[r.Key()] = r
	}
	userStore := map[string]config.UserMapping{}
	for _, u := range users {
		userStore[u.Key()] = u
	}
	allowed := map[string]bool{}
	for _, a := range accounts {
		allowed[a] = true
		resp.Accounts = append(resp.Accounts, a)
	}
	for _, a := range req.ARNs {
		resp.Lookups = append(resp.Lookups, find(a, roleStore, userStore, allowed))
	}
	return resp
}

// find looks an ARN up as the ConfigMapMapper does: canonical ARN lower-cased, roles first, then
// users; the account allowed by mapAccounts. Several matches (the store is a Go map, so which
// one answers is random) are reported as ambiguous.
func find(a string, roles map[string]config.RoleMapping, users map[string]config.UserMapping, allowed map[string]bool) lookup {
	l := lookup{ARN: a}
	_, canonical, err := arn.Canonicalize(a)
	if err != nil {
		l.Error = err.Error()
		return l
	}
	l.Canonical = canonical
	subject := strings.ToLower(canonical)
	var hits []lookup
	for _, r := range roles {
		if r.Matches(subject) {
			hits = append(hits, lookup{Section: "mapRoles", Username: r.Username, Groups: groups(r.Groups)})
		}
	}
	if len(hits) == 0 {
		for _, u := range users {
			if u.Matches(subject) {
				hits = append(hits, lookup{Section: "mapUsers", Username: u.Username, Groups: groups(u.Groups)})
			}
		}
	}
	// The store is a Go map: which of several matches answers is random. Sorted, so that an
	// ambiguous lookup always reports the same first candidate (and says it is ambiguous).
	sort.Slice(hits, func(i, j int) bool {
		a, b := hits[i].Username+"\x00"+strings.Join(hits[i].Groups, "\x00"), hits[j].Username+"\x00"+strings.Join(hits[j].Groups, "\x00")
		return a < b
	})
	if len(hits) > 0 {
		l.Section, l.Username, l.Groups = hits[0].Section, hits[0].Username, hits[0].Groups
		for _, h := range hits[1:] {
			if h.Username != hits[0].Username || strings.Join(h.Groups, "\x00") != strings.Join(hits[0].Groups, "\x00") {
				l.Ambiguous = true
			}
		}
	}
	if parts := strings.SplitN(canonical, ":", 6); len(parts) == 6 {
		l.AccountAllowed = allowed[parts[4]]
	}
	return l
}

func main() {
	logrus.SetOutput(io.Discard)
	out := json.NewEncoder(os.Stdout)
	out.SetEscapeHTML(false)
	args := os.Args[1:]
	if len(args) == 1 && args[0] == "--batch" {
		in := bufio.NewReaderSize(os.Stdin, 1<<20)
		for {
			line, err := in.ReadBytes('\n')
			if len(strings.TrimSpace(string(line))) > 0 {
				var req request
				if jerr := json.Unmarshal(line, &req); jerr != nil {
					fmt.Fprintln(os.Stderr, "aws-auth-oracle: bad request:", jerr)
					os.Exit(2)
				}
				if eerr := out.Encode(answer(req)); eerr != nil {
					os.Exit(2)
				}
			}
			if err != nil {
				return
			}
		}
	}
	if len(args) == 1 && args[0] == "--canonicalize" {
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			_, c, err := arn.Canonicalize(sc.Text())
			msg := ""
			if err != nil {
				msg = err.Error()
			}
			fmt.Printf("%s\t%s\n", c, strings.ReplaceAll(msg, "\n", " "))
		}
		return
	}
	text, err := io.ReadAll(os.Stdin)
	if err != nil {
		fmt.Fprintln(os.Stderr, "aws-auth-oracle:", err)
		os.Exit(2)
	}
	manifest := string(text)
	if err := out.Encode(answer(request{Manifest: &manifest, ARNs: args})); err != nil {
		os.Exit(2)
	}
}
