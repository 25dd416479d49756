/** `scheme://user:password@…`, or `user:password@…` without a scheme; the password runs up to the first `@`. */
const WITH_SCHEME = /^([a-z][a-z0-9+.-]*:\/\/[^:@/\s]+):[^@\s]*@/i;
const WITHOUT_SCHEME = /^([^:@/\s]+):[^@\s]*@/;

/**
 * A proxy URL safe to print: the password becomes `***` (`http://user:***@proxy:3128`); the user name stays,
 * so people can tell which account is used. Works on text that is not a valid URL too, since that is where
 * a mistyped proxy setting would otherwise leak.
 */
export function redactUrlCredentials(text: string): string {
  return text.replace(text.includes("://") ? WITH_SCHEME : WITHOUT_SCHEME, "$1:***@");
}
