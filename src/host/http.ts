/** An HTTP token (RFC 9110 section 5.6.2): what a header name must be, in lower case as both parsers see it. */
export const HTTP_TOKEN = /^[!#$%&'*+.^_`|~0-9a-z-]+$/;
