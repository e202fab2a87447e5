"""ProjectServiceClient: the seed's ``projectClient.listUserProjects(userId, 1, 10)`` and more."""

from __future__ import annotations

from meshcore.client_manager import Metadata

from zoptal.clients.base import TypedClient
from zoptal.project.v1 import project_pb2

__all__ = ["ProjectServiceClient"]


class ProjectServiceClient(TypedClient):
    """Typed calls to ``zoptal.project.v1.ProjectService``."""

    file_descriptor = project_pb2.DESCRIPTOR
    service = "project"
    grpc_service = "ProjectService"

    async def get_project(
        self, project_id: str, *, timeout_ms: float | None = None, metadata: Metadata | None = None
    ) -> project_pb2.GetProjectResponse:
        request = project_pb2.GetProjectRequest(project_id=project_id)
        return await self._call(
            "GetProject", request, project_pb2.GetProjectResponse, timeout_ms, metadata
        )

    async def list_user_projects(
        self,
        user_id: str,
        page: int = 1,
        limit: int = 20,
        *,
        timeout_ms: float | None = None,
        metadata: Metadata | None = None,
    ) -> project_pb2.ListUserProjectsResponse:
        request = project_pb2.ListUserProjectsRequest(user_id=user_id, page=page, limit=limit)
        return await self._call(
            "ListUserProjects", request, project_pb2.ListUserProjectsResponse, timeout_ms, metadata
        )

    async def create_project(
        self,
        name: str,
        description: str = "",
        *,
        owner_id: str = "",
        request_id: str = "",
        timeout_ms: float | None = None,
        metadata: Metadata | None = None,
    ) -> project_pb2.CreateProjectResponse:
        """Create a project owned by the caller (or ``owner_id``, for services and admins);
        a repeat with the same ``request_id`` returns the first call's project."""
        request = project_pb2.CreateProjectRequest(
            name=name, description=description, owner_id=owner_id, request_id=request_id
        )
        return await self._call(
            "CreateProject", request, project_pb2.CreateProjectResponse, timeout_ms, metadata
        )

    async def update_project(
        self,
        project_id: str,
        version: int,
        *,
        name: str | None = None,
        description: str | None = None,
        timeout_ms: float | None = None,
        metadata: Metadata | None = None,
    ) -> project_pb2.UpdateProjectResponse:
        """Change the given fields if the project is still at ``version`` (else ABORTED)."""
        request = project_pb2.UpdateProjectRequest(project_id=project_id, version=version)
        if name is not None:
            request.name = name
        if description is not None:
            request.description = description
        return await self._call(
            "UpdateProject", request, project_pb2.UpdateProjectResponse, timeout_ms, metadata
        )

    async def delete_project(
        self,
        project_id: str,
        version: int = 0,
        *,
        timeout_ms: float | None = None,
        metadata: Metadata | None = None,
    ) -> project_pb2.DeleteProjectResponse:
        request = project_pb2.DeleteProjectRequest(project_id=project_id, version=version)
        return await self._call(
            "DeleteProject", request, project_pb2.DeleteProjectResponse, timeout_ms, metadata
        )

    async def check_project_access(
        self,
        user_id: str,
        project_id: str,
        action: project_pb2.ProjectAction.ValueType = project_pb2.PROJECT_ACTION_READ,
        *,
        timeout_ms: float | None = None,
        metadata: Metadata | None = None,
    ) -> project_pb2.CheckProjectAccessResponse:
        request = project_pb2.CheckProjectAccessRequest(
            user_id=user_id, project_id=project_id, action=action
        )
        return await self._call(
            "CheckProjectAccess",
            request,
            project_pb2.CheckProjectAccessResponse,
            timeout_ms,
            metadata,
        )

    async def add_project_member(
        self,
        project_id: str,
        user_id: str,
        role: project_pb2.ProjectRole.ValueType,
        *,
        timeout_ms: float | None = None,
        metadata: Metadata | None = None,
    ) -> project_pb2.AddProjectMemberResponse:
        request = project_pb2.AddProjectMemberRequest(
            project_id=project_id, user_id=user_id, role=role
        )
        return await self._call(
            "AddProjectMember", request, project_pb2.AddProjectMemberResponse, timeout_ms, metadata
        )

    async def remove_project_member(
        self,
        project_id: str,
        user_id: str,
        *,
        timeout_ms: float | None = None,
        metadata: Metadata | None = None,
    ) -> project_pb2.RemoveProjectMemberResponse:
        request = project_pb2.RemoveProjectMemberRequest(project_id=project_id, user_id=user_id)
        return await self._call(
            "RemoveProjectMember",
            request,
            project_pb2.RemoveProjectMemberResponse,
            timeout_ms,
            metadata,
        )

    async def list_project_members(
        self,
        project_id: str,
        page: int = 1,
        limit: int = 20,
        *,
        timeout_ms: float | None = None,
        metadata: Metadata | None = None,
    ) -> project_pb2.ListProjectMembersResponse:
        request = project_pb2.ListProjectMembersRequest(
            project_id=project_id, page=page, limit=limit
        )
        return await self._call(
            "ListProjectMembers",
            request,
            project_pb2.ListProjectMembersResponse,
            timeout_ms,
            metadata,
        )
