package main

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/shardwire/shardwire/admin"
)

// cliError is a failure as shardctl reports it: a message for the operator that says what to
// do, and the error behind it for errors.Is and errors.As.
type cliError struct {
	msg string
	err error
}

// Error returns the operator's message.
func (e *cliError) Error() string { return e.msg }

// Unwrap returns the error behind the message.
func (e *cliError) Unwrap() error { return e.err }

// explain turns an admin API failure into the message shardctl prints, saying what to do.
func (o *globalOptions) explain(c *admin.Client, err error) error {
	if err == nil {
		return nil
	}
	var unreachable *admin.UnreachableError
	if errors.As(err, &unreachable) {
		return &cliError{err: err, msg: fmt.Sprintf(
			"cannot reach the admin API at %s (from %s): %v; check that the node runs and that "+
				"--admin or %s names its admin address", unreachable.Addr, o.adminSource, unreachable.Err, envAdmin)}
	}
	var apiErr *admin.APIError
	if !errors.As(err, &apiErr) {
		return err
	}
	msg := apiErr.Message
	switch apiErr.Code {
	case admin.CodeUnknownGroup:
		msg += "; `shardctl map` lists the groups"
	case admin.CodeGroupExists:
		msg += "; choose another name, or remove the existing group first"
	case admin.CodeOwnsShards:
		msg += "; move its shards to other groups first, then remove it"
	case admin.CodeEpochConflict:
		// The node's message says which epoch the catalog is at now, and usually what to do.
		if !strings.Contains(msg, "again") {
			msg += "; run the command again"
		}
	case admin.CodeNoCatalog:
		msg += "; changing groups needs nodes configured with a shard map catalog"
	case admin.CodeCacheOff:
		msg += "; list cacheable tables under cache.tables in the node's configuration"
	case admin.CodeUnavailable:
		msg += "; check that the server runs and accepts connections from the node, then try again"
	case admin.CodeInvalid:
		msg = "the node rejected the request: " + msg
	case "":
		// Not an admin API answer at all.
		if apiErr.Status == http.StatusNotFound {
			msg += "; is " + c.Addr() + " a shardwire node's admin address (--admin or " + envAdmin + ")?"
		}
	default:
		msg = fmt.Sprintf("the node failed (%s, HTTP %d): %s", apiErr.Code, apiErr.Status, msg)
	}
	return &cliError{msg: msg, err: err}
}
