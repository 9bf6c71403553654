// Starts Swagger UI on /docs; a file of its own because the Content-Security-Policy forbids inline scripts.
window.ui = SwaggerUIBundle({ url: "/openapi.json", dom_id: "#swagger-ui", deepLinking: true });
