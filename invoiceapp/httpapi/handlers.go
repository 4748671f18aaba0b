package httpapi

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/shardwire/shardwire/invoiceapp"
)

// writeJSON writes v as a JSON response.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeError(w, http.StatusInternalServerError, codeInternal, "", "internal error")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// writeResponse writes a write operation's stored or fresh response.
func (a *API) writeResponse(w http.ResponseWriter, r *http.Request, resp invoiceapp.Response) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	if resp.Location != "" {
		h.Set("Location", resp.Location)
	}
	if resp.Replayed {
		h.Set("Idempotent-Replayed", "true")
		a.metrics.replays.WithLabelValues(r.Pattern).Inc()
	}
	w.WriteHeader(resp.Status)
	_, _ = w.Write(resp.Body)
}

// postInput reads a POST's body, decodes it into dst (unless dst is nil: the body is then
// ignored but still part of the idempotency fingerprint) and returns the request's
// idempotency key, nil when the client sent none.
func (a *API) postInput(w http.ResponseWriter, r *http.Request, dst any) (*invoiceapp.IdempotencyKey, bool) {
	body, err := readBody(w, r, a.maxBody)
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			writeError(w, http.StatusRequestEntityTooLarge, codeBodyTooLarge, "", "the request body exceeds the limit")
		} else {
			a.fail(w, r, err)
		}
		return nil, false
	}
	if dst != nil {
		if err := decodeJSON(body, dst); err != nil {
			a.fail(w, r, err)
			return nil, false
		}
	}
	raw, sent := r.Header["Idempotency-Key"]
	if !sent {
		return nil, true
	}
	if len(raw) != 1 {
		a.fail(w, r, &invoiceapp.Error{Kind: invoiceapp.KindInvalid, Code: invoiceapp.CodeInvalidValue,
			Field: "Idempotency-Key", Message: "must be sent once"})
		return nil, false
	}
	if dst == nil {
		body = nil // an ignored body is no part of the request's identity
	}
	key, err := invoiceapp.NewIdempotencyKey(raw[0], r.Method, r.URL.Path, body)
	if err != nil {
		a.fail(w, r, err)
		return nil, false
	}
	return key, true
}

// createCustomer answers POST /v1/customers, rate-limited per client address as free.
func (a *API) createCustomer(w http.ResponseWriter, r *http.Request) {
	if !a.admit(w, r, clientLimitKey(r), invoiceapp.TierFree) {
		return
	}
	var in invoiceapp.NewCustomer
	key, ok := a.postInput(w, r, &in)
	if !ok {
		return
	}
	resp, err := a.store.CreateCustomer(r.Context(), in, key)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	a.writeResponse(w, r, resp)
}

// getCustomer answers GET /v1/customers/{id}.
func (a *API) getCustomer(w http.ResponseWriter, r *http.Request, id int64) {
	c, err := a.store.GetCustomer(r.Context(), id)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, c)
}

// createInvoice answers POST /v1/customers/{id}/invoices.
func (a *API) createInvoice(w http.ResponseWriter, r *http.Request, id int64) {
	var in invoiceapp.NewInvoice
	key, ok := a.postInput(w, r, &in)
	if !ok {
		return
	}
	resp, err := a.store.CreateInvoice(r.Context(), id, in, key)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	a.writeResponse(w, r, resp)
}

// listInvoices answers GET /v1/customers/{id}/invoices.
func (a *API) listInvoices(w http.ResponseWriter, r *http.Request, id int64) {
	q := r.URL.Query()
	page, err := a.store.ListInvoices(r.Context(), id, invoiceapp.ListQuery{
		Limit: q.Get("limit"), Cursor: q.Get("cursor"), Status: q.Get("status"), From: q.Get("from"), To: q.Get("to"),
	})
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, page)
}

// getInvoice answers GET /v1/customers/{id}/invoices/{invoice}.
func (a *API) getInvoice(w http.ResponseWriter, r *http.Request, id int64) {
	inv, err := invoiceIDParam(r)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	got, err := a.store.GetInvoice(r.Context(), id, inv)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, got)
}

// recordPayment answers POST /v1/customers/{id}/invoices/{invoice}/payments.
func (a *API) recordPayment(w http.ResponseWriter, r *http.Request, id int64) {
	inv, err := invoiceIDParam(r)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	var in invoiceapp.NewPayment
	key, ok := a.postInput(w, r, &in)
	if !ok {
		return
	}
	resp, err := a.store.RecordPayment(r.Context(), id, inv, in, key)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	a.writeResponse(w, r, resp)
}

// voidInvoice answers POST /v1/customers/{id}/invoices/{invoice}/void; the body is ignored.
func (a *API) voidInvoice(w http.ResponseWriter, r *http.Request, id int64) {
	inv, err := invoiceIDParam(r)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	key, ok := a.postInput(w, r, nil)
	if !ok {
		return
	}
	resp, err := a.store.VoidInvoice(r.Context(), id, inv, key)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	a.writeResponse(w, r, resp)
}

// summary answers GET /v1/customers/{id}/summary.
func (a *API) summary(w http.ResponseWriter, r *http.Request, id int64) {
	s, err := a.store.Summary(r.Context(), id)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, s)
}
