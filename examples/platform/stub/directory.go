package stub

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"slices"
	"sync"
	"time"
)

// UsersFile is the layout of the users file: a table of roles, each
// naming the permissions it grants, and the users with their roles.
//
//	{
//	  "roles": {"org_reader": ["users.read"],
//	            "namespace_writer": ["projects.read", "projects.write"]},
//	  "users": {"user_123": {"org_role": "org_reader",
//	                         "namespaces": {"ns_1": "namespace_writer"},
//	                         "disabled": false}}
//	}
type UsersFile struct {
	Roles map[string][]string `json:"roles"`
	Users map[string]User     `json:"users"`
}

// User is one user's entry in the users file. OrgRole may be empty, in
// which case the user has no organization permissions. Namespaces maps a
// namespace id to the user's role in it.
type User struct {
	OrgRole    string            `json:"org_role"`
	Namespaces map[string]string `json:"namespaces,omitempty"`
	Disabled   bool              `json:"disabled,omitempty"`
}

// Permissions is the users API's answer for one user, the document the
// gateway fetches from permissions_url.
type Permissions struct {
	UserID         string                 `json:"user_id"`
	OrgRole        string                 `json:"org_role"`
	OrgPermissions []string               `json:"org_permissions"`
	Namespaces     []NamespacePermissions `json:"namespaces"`
	Disabled       bool                   `json:"disabled"`
}

// NamespacePermissions is a user's role in one namespace and the
// permissions that role grants.
type NamespacePermissions struct {
	NamespaceID string   `json:"namespace_id"`
	Role        string   `json:"role"`
	Permissions []string `json:"permissions"`
}

// Directory holds the roles and users the stand-in platform serves. A
// Directory loaded from a file re-reads that file when its modification
// time or size changes, checking at most once per reload interval, on the
// next lookup. Changes made with SetUser and DeleteUser live in memory
// only: the next reload of the file replaces them.
//
// A Directory is safe for concurrent use.
type Directory struct {
	path     string
	interval time.Duration
	now      func() time.Time
	logger   *slog.Logger

	mu      sync.Mutex
	data    UsersFile
	modTime time.Time
	size    int64
	checked time.Time
}

// NewDirectory returns a Directory serving f, with no file behind it.
// It reports an error if a user names a role that f does not define.
func NewDirectory(f UsersFile) (*Directory, error) {
	f = cloneUsersFile(f)
	if err := f.validate(); err != nil {
		return nil, err
	}
	return &Directory{data: f, now: time.Now, logger: discardLogger()}, nil
}

// LoadDirectory reads the users file at path and returns a Directory that
// reloads it when it changes. The file is checked at most once per
// interval; an interval of zero checks on every lookup and a negative one
// never reloads. A failed reload is logged to logger (if not nil) and the
// previous contents are kept.
func LoadDirectory(path string, interval time.Duration, logger *slog.Logger) (*Directory, error) {
	if logger == nil {
		logger = discardLogger()
	}
	d := &Directory{path: path, interval: interval, now: time.Now, logger: logger}

	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("loading users file: %w", err)
	}
	data, err := readUsersFile(path)
	if err != nil {
		return nil, err
	}
	d.data, d.modTime, d.size, d.checked = data, fi.ModTime(), fi.Size(), d.now()
	return d, nil
}

// Permissions returns the permissions document for user, and false if
// the directory has no such user.
func (d *Directory) Permissions(user string) (Permissions, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.refreshLocked()

	u, ok := d.data.Users[user]
	if !ok {
		return Permissions{}, false
	}
	p := Permissions{
		UserID:         user,
		OrgRole:        u.OrgRole,
		OrgPermissions: sortedCopy(d.data.Roles[u.OrgRole]),
		Namespaces:     []NamespacePermissions{},
		Disabled:       u.Disabled,
	}
	for _, ns := range slices.Sorted(maps.Keys(u.Namespaces)) {
		role := u.Namespaces[ns]
		p.Namespaces = append(p.Namespaces, NamespacePermissions{
			NamespaceID: ns,
			Role:        role,
			Permissions: sortedCopy(d.data.Roles[role]),
		})
	}
	return p, true
}

// SetUser creates or replaces the user id in memory. It reports an error,
// and changes nothing, if u names a role the directory does not define.
func (d *Directory) SetUser(id string, u User) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.refreshLocked()

	u.Namespaces = maps.Clone(u.Namespaces)
	if err := d.data.validateUser(id, u); err != nil {
		return err
	}
	d.data.Users[id] = u
	return nil
}

// DeleteUser removes the user id from memory and reports whether it was
// there.
func (d *Directory) DeleteUser(id string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.refreshLocked()

	_, ok := d.data.Users[id]
	delete(d.data.Users, id)
	return ok
}

// refreshLocked re-reads the users file if it is due for a check and has
// changed since it was last read. d.mu must be held.
func (d *Directory) refreshLocked() {
	if d.path == "" || d.interval < 0 {
		return
	}
	now := d.now()
	if d.interval > 0 && now.Sub(d.checked) < d.interval {
		return
	}
	d.checked = now

	fi, err := os.Stat(d.path)
	if err != nil {
		d.logger.Error("users file check failed", "path", d.path, "error", err)
		return
	}
	if fi.ModTime().Equal(d.modTime) && fi.Size() == d.size {
		return
	}

	// remember the new stamp even when the file does not parse, so a
	// broken edit is reported once rather than on every check
	d.modTime, d.size = fi.ModTime(), fi.Size()
	data, err := readUsersFile(d.path)
	if err != nil {
		d.logger.Error("users file reload failed; keeping previous users",
			"path", d.path, "error", err)
		return
	}
	d.data = data
	d.logger.Info("users file reloaded", "path", d.path, "users", len(data.Users))
}

// readUsersFile reads, decodes and validates the users file at path.
func readUsersFile(path string) (UsersFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return UsersFile{}, fmt.Errorf("loading users file: %w", err)
	}
	defer f.Close()

	var data UsersFile
	dec := json.NewDecoder(f)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&data); err != nil {
		return UsersFile{}, fmt.Errorf("decoding users file %s: %w", path, err)
	}
	if err := dec.Decode(&struct{}{}); !errors.Is(err, io.EOF) {
		return UsersFile{}, fmt.Errorf("decoding users file %s: trailing data", path)
	}
	if err := data.validate(); err != nil {
		return UsersFile{}, fmt.Errorf("users file %s: %w", path, err)
	}
	return data, nil
}

// validate checks that every role a user holds is defined. It fills nil
// maps so the file can be written to afterwards.
func (f *UsersFile) validate() error {
	if f.Roles == nil {
		f.Roles = map[string][]string{}
	}
	if f.Users == nil {
		f.Users = map[string]User{}
	}
	for _, id := range slices.Sorted(maps.Keys(f.Users)) {
		if err := f.validateUser(id, f.Users[id]); err != nil {
			return err
		}
	}
	return nil
}

// validateUser checks one user entry against the roles of f.
func (f *UsersFile) validateUser(id string, u User) error {
	if id == "" {
		return errors.New("empty user id")
	}
	if _, ok := f.Roles[u.OrgRole]; u.OrgRole != "" && !ok {
		return fmt.Errorf("user %q: unknown org role %q", id, u.OrgRole)
	}
	for _, ns := range slices.Sorted(maps.Keys(u.Namespaces)) {
		role := u.Namespaces[ns]
		if ns == "" {
			return fmt.Errorf("user %q: empty namespace id", id)
		}
		if _, ok := f.Roles[role]; !ok {
			return fmt.Errorf("user %q: namespace %q: unknown role %q", id, ns, role)
		}
	}
	return nil
}

// cloneUsersFile returns a deep copy of f, so a caller's maps are never
// shared with a Directory.
func cloneUsersFile(f UsersFile) UsersFile {
	c := UsersFile{
		Roles: make(map[string][]string, len(f.Roles)),
		Users: make(map[string]User, len(f.Users)),
	}
	for name, perms := range f.Roles {
		c.Roles[name] = slices.Clone(perms)
	}
	for id, u := range f.Users {
		u.Namespaces = maps.Clone(u.Namespaces)
		c.Users[id] = u
	}
	return c
}

// sortedCopy returns a sorted copy of s that is never nil, so it encodes
// as [] rather than null.
func sortedCopy(s []string) []string {
	c := append([]string{}, s...)
	slices.Sort(c)
	return c
}

// discardLogger returns a logger that writes nothing.
func discardLogger() *slog.Logger {
	return slog.New(slog.DiscardHandler)
}
