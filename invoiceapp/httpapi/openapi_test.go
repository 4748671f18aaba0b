package httpapi

import (
	"os"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/shardwire/shardwire/invoiceapp"
)

// docs/openapi.yaml must describe exactly the routes the API serves and every error code.
func TestOpenAPIMatchesCode(t *testing.T) {
	raw, err := os.ReadFile("../../docs/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var spec struct {
		OpenAPI string                    `yaml:"openapi"`
		Paths   map[string]map[string]any `yaml:"paths"`
	}
	if err := yaml.Unmarshal(raw, &spec); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(spec.OpenAPI, "3.1") {
		t.Errorf("openapi %q", spec.OpenAPI)
	}
	var documented []string
	for path, ops := range spec.Paths {
		for method := range ops {
			if method != "parameters" {
				documented = append(documented, strings.ToUpper(method)+" "+path)
			}
		}
	}
	api, err := New(Options{Store: invoiceapp.NewStore(nil, invoiceapp.StoreOptions{})})
	if err != nil {
		t.Fatal(err)
	}
	served := slices.Clone(api.routes)
	slices.Sort(served)
	slices.Sort(documented)
	if !slices.Equal(served, documented) {
		t.Errorf("served routes\n%s\ndocumented\n%s", strings.Join(served, "\n"), strings.Join(documented, "\n"))
	}
	codes := []string{
		invoiceapp.CodeInvalidJSON, invoiceapp.CodeRequired, invoiceapp.CodeInvalidValue, invoiceapp.CodeUnknownField,
		invoiceapp.CodeInvalidCursor, invoiceapp.CodeCurrencyMismatch, invoiceapp.CodeCustomerNotFound,
		invoiceapp.CodeInvoiceNotFound, invoiceapp.CodeCustomerExists, invoiceapp.CodeInvoiceVoid,
		invoiceapp.CodeInvoicePaid, invoiceapp.CodeOverpayment, invoiceapp.CodeInvoiceHasPayments,
		invoiceapp.CodeKeyReused, codeNotFound, codeMethodNotAllowed, codeBodyTooLarge, codeRateLimited,
		codeInternal, codeUnavailable,
	}
	for _, c := range codes {
		if !strings.Contains(string(raw), "`"+c+"`") {
			t.Errorf("error code %s is not documented", c)
		}
	}
}
