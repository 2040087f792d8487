package main

import (
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
)

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "pat",
		Usage: "<mint|inspect|keygen> [flags]",
		Short: "Mints and inspects dbnl personal access tokens",
		Long: `
Works with the personal access tokens (PATs) that the dbnl_auth handler
verifies: compact JWS tokens signed with an HMAC secret or a private key.

  pat mint     signs a new token for a user and prints it alone on stdout
  pat inspect  decodes a token WITHOUT verifying it and describes it
  pat keygen   writes a new private/public key pair for asymmetric algorithms

Secrets never travel as flag values, which would land in shell history and
in ps output: mint reads an HMAC secret from an environment variable
(DBNL_PAT_SECRET unless --hmac-secret-env names another) and a private key
from a PEM file.

Run 'pat <subcommand> --help' for the flags of each.
`,
		CobraFunc: func(cmd *cobra.Command) {
			addPATCommands(cmd, patEnv{getenv: os.Getenv, now: time.Now})
		},
	})
}

// addPATCommands turns cmd into the `pat` command: it adds the mint,
// inspect and keygen subcommands, which read the world through env and
// write to cmd's output streams, so tests can run them in-process.
func addPATCommands(cmd *cobra.Command, env patEnv) {
	cmd.Args = cobra.ArbitraryArgs
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if len(args) == 0 {
			return cmd.Help()
		}
		return fmt.Errorf("unknown pat subcommand %q; want mint, inspect or keygen", args[0])
	}
	cmd.AddCommand(newMintCommand(env), newInspectCommand(env), newKeygenCommand())
}

// newMintCommand returns the `pat mint` command.
func newMintCommand(env patEnv) *cobra.Command {
	var opts mintOptions
	cmd := &cobra.Command{
		Use:   "mint --user <id> [flags]",
		Short: "Signs a new token for a user and prints it on stdout",
		Long: `
Signs a new personal access token and prints it, alone on one line, on
stdout, so that TOKEN=$(dbnl-gateway pat mint --user u1) captures it.
Warnings go to stderr.

The token carries the user id in sub (or in --user-claim), iat, exp, a
random jti, and iss, aud, nbf and extra string claims when asked.

HMAC algorithms (HS256, HS384, HS512) read the secret from the environment
variable named by --hmac-secret-env, DBNL_PAT_SECRET by default; like the
gateway, mint refuses a secret shorter than 32 bytes. The other
algorithms sign with the PEM private key in --key (PKCS#8, PKCS#1 RSA or
SEC1 EC; 'pat keygen' makes one): RSA keys for RS* and PS*, ECDSA P-256,
P-384 and P-521 keys for ES256, ES384 and ES512, Ed25519 keys for EdDSA.
`,
		Example: `  $ export DBNL_PAT_SECRET="$(openssl rand -hex 32)"
  $ TOKEN=$(dbnl-gateway pat mint --user user_123 --issuer dbnl --audience dbnl-api)
  $ dbnl-gateway pat mint --user user_123 --alg ES256 --key keys/pat.key --kid k1 --lifetime 24h`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f := cmd.Flags()
			opts.secretSet = f.Changed("hmac-secret-env")
			opts.expiresSet = f.Changed("expires-at")
			opts.lifeSet = f.Changed("lifetime")
			opts.nbfSet = f.Changed("not-before")
			opts.jtiSet = f.Changed("jti")
			return runMint(opts, env, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}

	f := cmd.Flags()
	f.StringVar(&opts.user, "user", "", "user `id` the token speaks for (required)")
	f.StringVar(&opts.userClaim, "user-claim", "sub", "`name` of the claim that holds the user id")
	f.StringVar(&opts.alg, "alg", "HS256", "signing `algorithm`: "+algorithmNames())
	f.StringVar(&opts.secretEnv, "hmac-secret-env", defaultSecretEnv,
		"`NAME` of the environment variable holding the HMAC secret")
	f.StringVar(&opts.keyFile, "key", "", "PEM private key `file` for RS*, PS*, ES* and EdDSA")
	f.StringVar(&opts.kid, "kid", "", "key `id` for the kid header")
	f.StringVar(&opts.issuer, "issuer", "", "`iss` claim")
	f.StringArrayVar(&opts.audiences, "audience", nil, "`aud` claim; repeat for several audiences")
	f.DurationVar(&opts.lifetime, "lifetime", time.Hour, "how long the token is valid")
	f.StringVar(&opts.expiresAt, "expires-at", "", "RFC 3339 `time` the token expires, instead of --lifetime")
	f.DurationVar(&opts.notBefore, "not-before", 0, "set nbf to now plus this `offset` (may be negative)")
	f.StringVar(&opts.jti, "jti", "", "token `id` (default: 128 random bits in hex; --jti= leaves it out)")
	f.StringArrayVar(&opts.claims, "claim", nil, "extra string claim as `name=value`; repeatable")
	return cmd
}

// newInspectCommand returns the `pat inspect` command.
func newInspectCommand(env patEnv) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "inspect [<token>|-]",
		Short: "Decodes a token without verifying it",
		Long: `
Decodes a token WITHOUT verifying its signature and prints its header and
claims, when it expires and whether it already has, its not-before and
issued-at times, and its fingerprint: the first 12 hex characters of the
SHA-256 of the token, which is how the gateway's logs name a token.

The token comes from the argument, or from stdin when the argument is - or
absent; a leading "Bearer " is ignored. The signature is never printed.
`,
		Example: `  $ dbnl-gateway pat inspect "$TOKEN"
  $ echo "$TOKEN" | dbnl-gateway pat inspect --json`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runInspect(args, asJSON, env, cmd.InOrStdin(), cmd.OutOrStdout())
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON")
	return cmd
}

// newKeygenCommand returns the `pat keygen` command.
func newKeygenCommand() *cobra.Command {
	var opts keygenOptions
	cmd := &cobra.Command{
		Use:   "keygen --out <dir> [flags]",
		Short: "Writes a new key pair for signing tokens",
		Long: `
Writes a new key pair into the --out directory (created with mode 0700 if
missing): NAME.key, the PKCS#8 PEM private key for 'pat mint --key', with
mode 0600, and NAME.pub, the PEM public key for the dbnl_auth public_key
option. Existing files are never overwritten.
`,
		Example: `  $ dbnl-gateway pat keygen --alg ES256 --out keys
  $ dbnl-gateway pat keygen --alg RS256 --rsa-bits 3072 --out keys --name rsa-2025`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runKeygen(opts, cmd.OutOrStdout())
		},
	}

	f := cmd.Flags()
	f.StringVar(&opts.alg, "alg", "ES256", "`algorithm` the key will sign with (RS*, PS*, ES*, EdDSA)")
	f.StringVar(&opts.outDir, "out", "", "`directory` to write the key pair into (required)")
	f.StringVar(&opts.name, "name", "pat", "base `name` of the key files")
	f.IntVar(&opts.rsaBits, "rsa-bits", minRSABits, "RSA modulus size in `bits` for RS* and PS*")
	return cmd
}
