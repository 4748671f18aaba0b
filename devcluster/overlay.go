package devcluster

import (
	"fmt"

	"gopkg.in/yaml.v3"

	"github.com/shardwire/shardwire/config"
)

// applyOverlay returns base with the YAML overlay deep-merged over it, parsed and validated by
// config.Parse. Maps merge key by key; any other value in the overlay (scalars, lists such as
// users or groups) replaces the generated one whole. Unknown keys are rejected by config.Parse.
func applyOverlay(base config.Config, overlay []byte) (config.Config, error) {
	gen, err := yaml.Marshal(base)
	if err != nil {
		return config.Config{}, fmt.Errorf("encode generated config: %w", err)
	}
	var merged map[string]any
	if err := yaml.Unmarshal(gen, &merged); err != nil {
		return config.Config{}, fmt.Errorf("decode generated config: %w", err)
	}
	if len(overlay) > 0 {
		var over map[string]any
		if err := yaml.Unmarshal(overlay, &over); err != nil {
			return config.Config{}, fmt.Errorf("overlay: %w", err)
		}
		merged = mergeMaps(merged, over)
		keepDevAdmin(merged)
	}
	out, err := yaml.Marshal(merged)
	if err != nil {
		return config.Config{}, fmt.Errorf("encode merged config: %w", err)
	}
	cfg, err := config.Parse(out)
	if err != nil {
		return config.Config{}, fmt.Errorf("overlay: %w", err)
	}
	return cfg, nil
}

// keepDevAdmin keeps the console's admin login when an overlay replaced users but left
// admin_users as generated: cluster.json promises that login.
func keepDevAdmin(merged map[string]any) {
	admins, _ := merged["admin_users"].([]any)
	if len(admins) != 1 || admins[0] != AdminUser {
		return
	}
	users, _ := merged["users"].([]any)
	for _, u := range users {
		if m, ok := u.(map[string]any); ok && m["name"] == AdminUser {
			return
		}
	}
	merged["users"] = append(users, map[string]any{"name": AdminUser, "password": AdminPassword})
}

// mergeMaps merges src into dst recursively and returns dst.
func mergeMaps(dst, src map[string]any) map[string]any {
	if dst == nil {
		dst = map[string]any{}
	}
	for k, v := range src {
		if sm, ok := v.(map[string]any); ok {
			if dm, ok := dst[k].(map[string]any); ok {
				dst[k] = mergeMaps(dm, sm)
				continue
			}
		}
		dst[k] = v
	}
	return dst
}
