package storage

import (
	"errors"
	"fmt"
	"strings"

	krb "github.com/jcmturner/gokrb5/v8/client"
	"github.com/jcmturner/gokrb5/v8/config"
	"github.com/jcmturner/gokrb5/v8/credentials"
	"github.com/jcmturner/gokrb5/v8/keytab"
)

// KerberosOptions authenticates to a kerberized HDFS with a keytab (for
// services) or a credential cache (kinit, for people). The KDC is only
// contacted when the first NameNode connection is made.
type KerberosOptions struct {
	// Principal is the client principal for a keytab, "name@REALM" or
	// "service/host@REALM"; without a realm, krb5.conf's default_realm.
	Principal string
	// Keytab is the path of a keytab file holding Principal's keys.
	Keytab string
	// CCache is the path of a credential cache (e.g. /tmp/krb5cc_1000);
	// used when Keytab is empty. A cache is not renewed: the TGT must
	// outlive the process.
	CCache string
	// Krb5Conf is the path of krb5.conf (default /etc/krb5.conf).
	Krb5Conf string
	// ServicePrincipal is the NameNode's principal without the realm, as
	// dfs.namenode.kerberos.principal, e.g. "nn/_HOST" (_HOST becomes each
	// NameNode's host name). Required.
	ServicePrincipal string
}

// client builds the gokrb5 client the options describe.
func (k KerberosOptions) client() (*krb.Client, error) {
	if k.ServicePrincipal == "" {
		return nil, errors.New("kerberos: ServicePrincipal (the NameNode principal, e.g. nn/_HOST) is required")
	}
	confPath := k.Krb5Conf
	if confPath == "" {
		confPath = "/etc/krb5.conf"
	}
	cfg, err := config.Load(confPath)
	if err != nil {
		return nil, fmt.Errorf("kerberos: load %s: %w", confPath, err)
	}
	// Hadoop's KDCs commonly lack FAST; the Java client does not use it.
	settings := []func(*krb.Settings){krb.DisablePAFXFAST(true)}
	switch {
	case k.Keytab != "":
		if k.Principal == "" {
			return nil, errors.New("kerberos: a keytab needs Principal (name@REALM)")
		}
		name, realm, ok := strings.Cut(k.Principal, "@")
		if !ok || realm == "" {
			realm = cfg.LibDefaults.DefaultRealm
		}
		if name == "" || realm == "" {
			return nil, fmt.Errorf("kerberos: principal %q: want name@REALM (or set default_realm in %s)", k.Principal, confPath)
		}
		kt, err := keytab.Load(k.Keytab)
		if err != nil {
			return nil, fmt.Errorf("kerberos: load keytab %s: %w", k.Keytab, err)
		}
		return krb.NewWithKeytab(name, realm, kt, cfg, settings...), nil
	case k.CCache != "":
		cc, err := credentials.LoadCCache(k.CCache)
		if err != nil {
			return nil, fmt.Errorf("kerberos: load credential cache %s: %w", k.CCache, err)
		}
		c, err := krb.NewFromCCache(cc, cfg, settings...)
		if err != nil {
			return nil, fmt.Errorf("kerberos: credential cache %s: %w", k.CCache, err)
		}
		return c, nil
	default:
		return nil, errors.New("kerberos: set Keytab (with Principal) or CCache")
	}
}
