// Who is signed in, and which tenant the pages show (a platform admin picks one).

export const context = { session: null, tenant: null };

export function isPlatformAdmin() {
  return Boolean(context.session && context.session.roles.includes("platform-admin"));
}

export function setTenant(tenant) {
  context.tenant = tenant || null;
  if (tenant) sessionStorage.setItem("aion.tenant", tenant);
  else sessionStorage.removeItem("aion.tenant");
  window.dispatchEvent(new CustomEvent("aion:tenant", { detail: tenant }));
}

export function tenantBase() {
  return `/v1/tenants/${encodeURIComponent(context.tenant)}`;
}
