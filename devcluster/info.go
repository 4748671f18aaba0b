package devcluster

import (
	"encoding/json"
	"fmt"
	"os"
)

// The admin console login of the local cluster: an admin_users member for the virtual
// database "shardwire" (psql -h ... -U admin shardwire). A fixed development password, like
// the application user's.
const (
	AdminUser     = "admin"
	AdminPassword = "admin"
)

// Info is the cluster.json contract other tools read. Keep existing fields stable.
type Info struct {
	User     string `json:"user"`
	Password string `json:"password"`
	Database string `json:"database"`
	// AdminUser and AdminPassword log in to the SQL admin console (database "shardwire").
	AdminUser     string `json:"admin_user"`
	AdminPassword string `json:"admin_password"`
	// Catalog is the shard map catalog's DSN (schema "shardwire").
	Catalog string      `json:"catalog"`
	Proxies []ProxyInfo `json:"proxies"`
	Groups  []GroupInfo `json:"groups"`
	// Redis is the Redis address (host:port), "" without one.
	Redis string `json:"redis,omitempty"`
	// Invoiced is the invoice service's base URL, "" when it does not run.
	Invoiced string `json:"invoiced,omitempty"`
}

// ProxyInfo is one proxy node in cluster.json.
type ProxyInfo struct {
	Name  string `json:"name"`
	Addr  string `json:"addr"`
	Admin string `json:"admin"`
	// Gossip is the node's gossip address (TCP and UDP).
	Gossip string `json:"gossip"`
	// PID is the node's process id when it runs as a child process; 0 in-process or when
	// the child is not running.
	PID int `json:"pid"`
}

// GroupInfo is one shard group in cluster.json; servers are postgres:// URLs as User.
type GroupInfo struct {
	Name     string   `json:"name"`
	Writer   string   `json:"writer"`
	Replicas []string `json:"replicas"`
}

// Info describes the running cluster.
func (c *Cluster) Info() Info {
	info := Info{User: User, Password: Password, Database: Database, AdminUser: AdminUser, AdminPassword: AdminPassword,
		Catalog: c.PG.Groups[0].Writer.AppDSN(), Proxies: []ProxyInfo{}, Groups: []GroupInfo{}}
	for _, n := range c.Nodes {
		info.Proxies = append(info.Proxies, ProxyInfo{Name: n.Name, Addr: n.Addr, Admin: n.Admin, Gossip: n.Gossip, PID: n.PID()})
	}
	if c.Redis != nil {
		info.Redis = c.Redis.Addr()
	}
	if c.Invoiced != nil {
		info.Invoiced = "http://" + c.Invoiced.Addr()
	}
	for _, g := range c.PG.Groups {
		gi := GroupInfo{Name: g.Name, Writer: g.Writer.AppDSN(), Replicas: []string{}}
		for _, r := range g.Replicas {
			gi.Replicas = append(gi.Replicas, r.AppDSN())
		}
		info.Groups = append(info.Groups, gi)
	}
	return info
}

// WriteInfo writes Info as indented JSON to path atomically (via a temporary file and
// rename), so a reader never sees a partial file.
func (c *Cluster) WriteInfo(path string) error {
	data, err := json.MarshalIndent(c.Info(), "", "  ")
	if err != nil {
		return fmt.Errorf("encode cluster file: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("write cluster file: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write cluster file: %w", err)
	}
	return nil
}
