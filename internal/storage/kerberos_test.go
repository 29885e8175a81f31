package storage_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jcmturner/gokrb5/v8/iana/etypeID"
	"github.com/jcmturner/gokrb5/v8/keytab"
	"github.com/lambdalog/lambdalog/internal/storage"
)

const testKrb5Conf = `[libdefaults]
  default_realm = EXAMPLE.COM
  dns_lookup_kdc = false
[realms]
  EXAMPLE.COM = {
    kdc = 127.0.0.1:1
  }
`

// kerberosFiles writes a krb5.conf and a keytab for lambdalog/etl@EXAMPLE.COM.
func kerberosFiles(t *testing.T) (conf, kt string) {
	t.Helper()
	dir := t.TempDir()
	conf = filepath.Join(dir, "krb5.conf")
	if err := os.WriteFile(conf, []byte(testKrb5Conf), 0o600); err != nil {
		t.Fatal(err)
	}
	k := keytab.New()
	if err := k.AddEntry("lambdalog/etl", "EXAMPLE.COM", "secret", time.Unix(1_700_000_000, 0), 1, etypeID.AES256_CTS_HMAC_SHA1_96); err != nil {
		t.Fatal(err)
	}
	b, err := k.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	kt = filepath.Join(dir, "etl.keytab")
	if err := os.WriteFile(kt, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return conf, kt
}

func TestKerberosKeytabWiring(t *testing.T) {
	conf, kt := kerberosFiles(t)
	for _, principal := range []string{"lambdalog/etl@EXAMPLE.COM", "lambdalog/etl"} {
		name, realm, hasKeytab, err := storage.KerberosClient(storage.KerberosOptions{
			Principal: principal, Keytab: kt, Krb5Conf: conf, ServicePrincipal: "nn/_HOST",
		})
		if err != nil {
			t.Fatalf("%s: %v", principal, err)
		}
		if name != "lambdalog/etl" || realm != "EXAMPLE.COM" || !hasKeytab {
			t.Fatalf("%s: client for %q@%q (keytab %v); want lambdalog/etl@EXAMPLE.COM with the keytab", principal, name, realm, hasKeytab)
		}
	}
}

func TestKerberosConfigErrors(t *testing.T) {
	conf, kt := kerberosFiles(t)
	dir := t.TempDir()
	garbage := filepath.Join(dir, "krb5cc")
	if err := os.WriteFile(garbage, []byte("not a ccache"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		opts storage.KerberosOptions
		want string
	}{
		{storage.KerberosOptions{Principal: "a@EXAMPLE.COM", Keytab: kt, Krb5Conf: conf}, "ServicePrincipal"},
		{storage.KerberosOptions{Keytab: kt, Krb5Conf: conf, ServicePrincipal: "nn/_HOST"}, "needs Principal"},
		{storage.KerberosOptions{Krb5Conf: conf, ServicePrincipal: "nn/_HOST"}, "set Keytab"},
		{storage.KerberosOptions{Principal: "a", Keytab: filepath.Join(dir, "none"), Krb5Conf: conf, ServicePrincipal: "nn/_HOST"}, "load keytab"},
		{storage.KerberosOptions{Principal: "a", Keytab: kt, Krb5Conf: filepath.Join(dir, "none"), ServicePrincipal: "nn/_HOST"}, "load " + filepath.Join(dir, "none")},
		{storage.KerberosOptions{CCache: garbage, Krb5Conf: conf, ServicePrincipal: "nn/_HOST"}, "credential cache " + garbage},
	} {
		_, _, _, err := storage.KerberosClient(tc.opts)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v; want an error saying %q", tc.opts, err, tc.want)
		}
	}
	// Open reports it before touching the network.
	_, err := storage.Open(context.Background(), "hdfs://127.0.0.1:1/x", storage.Options{
		Kerberos: &storage.KerberosOptions{CCache: garbage, Krb5Conf: conf, ServicePrincipal: "nn/_HOST"},
	})
	if err == nil || !strings.Contains(err.Error(), "storage: open hdfs://127.0.0.1:1/x: kerberos:") {
		t.Fatalf("Open with a bad credential cache: %v", err)
	}
}
